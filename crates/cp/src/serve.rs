//! Listeners: plain HTTP through `axum::serve`, HTTPS through tokio-rustls + hyper, both with
//! the peer address available to handlers (for the loopback-is-admin rule) and both drained
//! on shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, Listen};

/// How long in-flight requests get to finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(10);

/// A one-shot stop signal shared by every listener.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(watch::channel(false).0)
    }

    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

pub async fn bind(listen: Listen, key: &str) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(listen.interface, listen.port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({key})"))
}

pub async fn http(listener: TcpListener, router: Router, shutdown: Shutdown) {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await });
    // Bound the drain: a client holding a connection open must not block the stop forever.
    tokio::select! {
        res = serve => if let Err(e) = res { tracing::error!(error = %e, "HTTP server failed") },
        _ = async { shutdown.wait().await; tokio::time::sleep(DRAIN).await } => {
            tracing::warn!("HTTP connections still open after the drain period; closing them");
        }
    }
}

pub async fn https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: Shutdown,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let acceptor = acceptor.clone();
        let svc =
            TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTPS connections still open after the drain period; closing them");
    }
}

/// The API's TLS configuration: the configured certificate, or one generated on first start
/// and kept in `{workDir}/tls/` so that clients pinning it keep working across restarts.
pub async fn tls_config(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_pem, key_pem) = match (&config.api_https_cert_file, &config.api_https_key_file) {
        (Some(c), Some(k)) => (
            read(c, "apiServer.https.tlsCertFile")?,
            read(k, "apiServer.https.tlsKeyFile")?,
        ),
        _ => generated_cert(
            &config.work_dir,
            "api-server",
            config.api_https.map(|l| l.interface),
        )?,
    };
    let chain = aerie_identity::load_cert_chain(&cert_pem).context("the API server certificate")?;
    let key = aerie_identity::load_private_key(&key_pem).context("the API server key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the API server certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn read(path: &Path, key: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {} ({key})", path.display()))
}

/// A certificate generated as `{workDir}/tls/{name}.crt`: it names localhost, this host and
/// the listener's interface (when it is a specific address). It is regenerated when that list changes, e.g. a new interface.
pub fn generated_cert(
    work_dir: &Path,
    name: &str,
    interface: Option<std::net::IpAddr>,
) -> anyhow::Result<(String, String)> {
    let dir = work_dir.join("tls");
    let (cert_path, key_path, sans_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.sans")),
    );
    let hosts = vec!["localhost".to_string(), crate::hostname()];
    let mut ips = vec![
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if let Some(ip) = interface.filter(|ip| !ip.is_unspecified() && !ips.contains(ip)) {
        ips.push(ip);
    }
    let sans = format!("{hosts:?} {ips:?}");
    let same_sans = std::fs::read_to_string(&sans_path).is_ok_and(|s| s == sans);
    if cert_path.exists() && key_path.exists() && same_sans {
        return Ok((
            read(&cert_path, "generated certificate")?,
            read(&key_path, "generated key")?,
        ));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) = aerie_identity::self_signed_server_cert(&hosts, &ips)?;
    write_private(&key_path, &key)?;
    std::fs::write(&cert_path, &cert)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    std::fs::write(&sans_path, &sans)
        .with_context(|| format!("cannot write {}", sans_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    Ok((cert, key))
}

/// Writes a private key readable by the owner only.
fn write_private(path: &Path, data: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data.as_bytes())?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
    }
}

/// Serves the DP server (gRPC over TLS) until shutdown. Its certificate is generated on
/// first start as `{workDir}/tls/dp-server.crt`: give that file to `kuma-dp --ca-cert-file`.
pub async fn dp_server(
    listener: TcpListener,
    config: &Config,
    service: crate::dpserver::DpServer,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (cert, key) = match (&config.dp_server_cert_file, &config.dp_server_key_file) {
        (Some(c), Some(k)) => (
            read(c, "dpServer.tlsCertFile")?,
            read(k, "dpServer.tlsKeyFile")?,
        ),
        _ => generated_cert(&config.work_dir, "dp-server", None)?,
    };
    let identity = tonic::transport::Identity::from_pem(cert, key);
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .context("the DP server's TLS certificate")?
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(service.into_service());
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Ok(tokio::spawn(async move {
        let stop = async move { shutdown.wait().await };
        if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!(error = %e, "DP server failed");
        }
    }))
}

/// Serves KDS (gRPC over TLS) on the global until shutdown. Its certificate is the configured
/// one or generated on first start as `{workDir}/tls/kds-server.crt`: give that file to each
/// zone as `multizone.zone.kds.rootCaFile`.
pub async fn kds_server(
    listener: TcpListener,
    config: &Config,
    kds: &crate::config::GlobalKds,
    service: crate::kds::global::GlobalKds,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (cert, key) = match (&kds.cert_file, &kds.key_file) {
        (Some(c), Some(k)) => (
            read(c, "multizone.global.kds.tlsCertFile")?,
            read(k, "multizone.global.kds.tlsKeyFile")?,
        ),
        _ => generated_cert(&config.work_dir, "kds-server", None)?,
    };
    let identity = tonic::transport::Identity::from_pem(cert, key);
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .context("the KDS server's TLS certificate")?
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(aerie_kds::grpc::KdsSyncServer::new(Arc::new(service)));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Ok(tokio::spawn(async move {
        let stop = async move { shutdown.wait().await };
        if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!(error = %e, "KDS server failed");
        }
    }))
}
