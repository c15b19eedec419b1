//! Listeners: the REST API (plain HTTP and HTTPS) and diagnostics over HTTP/1.1, the DP
//! server and KDS over gRPC (HTTP/2 over TLS). Every one accepts through
//! [`crate::connections`]: a cap on open connections, bounded TLS handshakes and the
//! read-header / idle / read / write timeouts, and all drain on shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, Listen};
use crate::connections::{self, Gate, Timeouts};

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

/// Connections the kernel queues for a listener before it accepts them (capped by
/// `net.core.somaxconn`): room for bursts, and for clients waiting while a connection cap
/// is reached.
const BACKLOG: u32 = 4096;

pub async fn bind(listen: Listen, key: &str) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(listen.interface, listen.port);
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(BACKLOG)
        })
        .with_context(|| format!("cannot listen on {addr} ({key})"))
}

/// The REST API's connection timeouts (Kuma's `apiServer.*Timeout`).
pub fn api_timeouts(config: &Config) -> Timeouts {
    Timeouts {
        read_header: config.api_read_header_timeout,
        idle: config.api_idle_timeout,
        read: Some(config.api_read_timeout),
        write: Some(config.api_write_timeout),
    }
}

/// The diagnostics port's: Kuma's diagnostics server allows 1 s for a request head; the
/// rest as the API's defaults.
pub const DIAGNOSTICS_TIMEOUTS: Timeouts = Timeouts {
    read_header: Duration::from_secs(1),
    idle: Duration::from_secs(120),
    read: Some(Duration::from_secs(10)),
    write: Some(Duration::from_secs(30)),
};

/// The MADS port's: a fetch may wait (long polling) up to its `fetch-timeout`, at most
/// 10 min; a request head within 5 s.
pub const MADS_TIMEOUTS: Timeouts = Timeouts {
    read_header: Duration::from_secs(5),
    idle: Duration::from_secs(120),
    read: Some(Duration::from_secs(10)),
    write: Some(Duration::from_secs(630)),
};

/// gRPC connections with no open stream close after this long (a proxy or zone always
/// holds one stream; pings keep nothing else alive).
pub const GRPC_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// KDS handshakes cross a WAN: a little more time than the DP server's default.
pub const KDS_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent streams per gRPC connection: a proxy uses one, a zone two.
pub const GRPC_MAX_STREAMS: u32 = 32;
/// The largest message a proxy may send (its first one carries its Dataplane and CSR).
pub const DP_MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Serves plain HTTP until shutdown.
pub async fn http(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    gate: Arc<Gate>,
    shutdown: Shutdown,
) {
    connections::serve_http1(listener, None, router, timeouts, gate, shutdown).await
}

/// Serves HTTPS until shutdown.
pub async fn https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    timeouts: Timeouts,
    gate: Arc<Gate>,
    shutdown: Shutdown,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    connections::serve_http1(listener, Some(acceptor), router, timeouts, gate, shutdown).await
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
    server_tls(&cert_pem, &key_pem, b"http/1.1", "the API server")
}

/// A TLS server configuration from PEM, offering one ALPN protocol.
fn server_tls(
    cert_pem: &str,
    key_pem: &str,
    alpn: &[u8],
    what: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain =
        aerie_identity::load_cert_chain(cert_pem).with_context(|| format!("{what} certificate"))?;
    let key = aerie_identity::load_private_key(key_pem).with_context(|| format!("{what} key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| format!("{what} certificate and key do not match"))?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
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
    crate::workdir::private_dir(work_dir)?;
    crate::workdir::private_dir(&dir)?;
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
    let tls = server_tls(&cert, &key, b"h2", "the DP server")?;
    let routes = tonic::service::Routes::new(service.into_service(DP_MAX_MESSAGE)).prepare();
    // A proxy sends small requests (ACKs): small receive windows bound what a flood buffers.
    let h2 = connections::grpc_h2(
        Duration::from_secs(15),
        Duration::from_secs(10),
        GRPC_MAX_STREAMS,
        64 * 1024,
    );
    let timeouts = Timeouts {
        read_header: config.dp_server_read_header_timeout,
        idle: GRPC_IDLE_TIMEOUT,
        read: None,
        write: None,
    };
    let gate = Gate::new(
        "DP server",
        "dpServer.maxConnections (KUMA_DP_SERVER_MAX_CONNECTIONS)",
        config.dp_server_max_connections,
    );
    Ok(tokio::spawn(connections::serve_grpc(
        listener,
        tokio_rustls::TlsAcceptor::from(tls),
        routes,
        h2,
        timeouts,
        gate,
        shutdown,
    )))
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
    let tls = server_tls(&cert, &key, b"h2", "the KDS server")?;
    let routes = tonic::service::Routes::new(
        aerie_kds::grpc::KdsSyncServer::new(Arc::new(service))
            .max_decoding_message_size(kds.max_msg_size),
    )
    .prepare();
    // Zones send their resources: hyper's default 1 MiB windows.
    let h2 = connections::grpc_h2(
        Duration::from_secs(10),
        Duration::from_secs(5),
        GRPC_MAX_STREAMS,
        1024 * 1024,
    );
    let timeouts = Timeouts {
        read_header: KDS_READ_HEADER_TIMEOUT,
        idle: GRPC_IDLE_TIMEOUT,
        read: None,
        write: None,
    };
    let gate = Gate::new(
        "KDS server",
        "multizone.global.kds.maxConnections (KUMA_MULTIZONE_GLOBAL_KDS_MAX_CONNECTIONS)",
        kds.max_connections,
    );
    Ok(tokio::spawn(connections::serve_grpc(
        listener,
        tokio_rustls::TlsAcceptor::from(tls),
        routes,
        h2,
        timeouts,
        gate,
        shutdown,
    )))
}
