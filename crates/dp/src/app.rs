//! Wires the proxy engine to the control-plane client: configs and certificates flow from
//! the stream into [`Proxy`] (or routes into [`Ingress`]), readiness follows the
//! connection, SIGTERM leaves the control plane and drains.

use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::proxy_config::{IngressConfig, ProxyConfig};
use aerie_identity::WorkloadKey;
use aerie_xds::client::{self, ClientOptions, ProxySink};
use aerie_xds::{NodeInfo, ProxyType};
use anyhow::Context;
use tokio::sync::watch;

use crate::{Identity, Ingress, IngressOptions, Proxy, ProxyOptions};

/// What `kuma-dp run` was asked to run.
pub enum Launch {
    Sidecar(Settings),
    Ingress(IngressSettings),
}

/// Everything `kuma-dp run` resolved from its flags, for a sidecar.
pub struct Settings {
    pub mesh: String,
    pub name: String,
    pub dataplane_json: String,
    pub admin: SocketAddr,
    pub cp_addresses: Vec<String>,
    pub ca_cert_pem: Option<String>,
    pub token: String,
    /// Worker threads serving connections (`--concurrency`); 0: one per CPU.
    pub workers: usize,
}

/// Everything `kuma-dp run --proxy-type ingress` resolved from its flags.
pub struct IngressSettings {
    pub name: String,
    /// The ZoneIngress as Universal JSON (sent to the control plane).
    pub zone_ingress_json: String,
    /// `networking.address:networking.port`.
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub cp_addresses: Vec<String>,
    pub ca_cert_pem: Option<String>,
    /// The zone token, opaque here.
    pub token: String,
}

pub async fn launch(l: Launch) -> anyhow::Result<()> {
    match l {
        Launch::Sidecar(s) => run(s).await,
        Launch::Ingress(s) => run_ingress(s).await,
    }
}

struct Sink(Proxy);

impl ProxySink for Sink {
    fn apply_config(&self, version: &str, cfg: &ProxyConfig) -> Result<(), String> {
        // The proxy keeps the config it runs (for /config_dump): its one copy.
        self.0
            .apply_config(version, cfg.clone())
            .map_err(|e| e.to_string())
    }

    fn apply_identity(
        &self,
        chain_pem: &str,
        key: &WorkloadKey,
        trust_bundle_pem: &str,
    ) -> Result<(), String> {
        let chain =
            aerie_identity::load_cert_chain(chain_pem).map_err(|e| format!("certificate: {e}"))?;
        let trust_anchors = aerie_identity::load_cert_chain(trust_bundle_pem)
            .map_err(|e| format!("trust bundle: {e}"))?;
        let id = Identity {
            chain,
            key: key.private_key_der(),
            trust_anchors,
        };
        self.0.apply_identity(id).map_err(|e| e.to_string())
    }

    fn set_connected(&self, connected: bool) {
        self.0.set_control_plane_connected(connected);
    }
}

/// The ingress has no certificate and no sidecar config: only routes reach it.
struct IngressSink(Ingress);

impl ProxySink for IngressSink {
    fn apply_config(&self, _version: &str, _cfg: &ProxyConfig) -> Result<(), String> {
        Err("this proxy is a zone ingress: it takes no sidecar configuration".into())
    }

    fn apply_identity(&self, _: &str, _: &WorkloadKey, _: &str) -> Result<(), String> {
        Err("this proxy is a zone ingress: it holds no certificate".into())
    }

    fn set_connected(&self, connected: bool) {
        self.0.set_control_plane_connected(connected);
    }

    fn apply_ingress(&self, version: &str, cfg: IngressConfig) -> Result<(), String> {
        self.0.apply_config(version, cfg).map_err(|e| e.to_string())
    }
}

async fn run_ingress(s: IngressSettings) -> anyhow::Result<()> {
    let mut opts = IngressOptions::new(s.name.clone());
    opts.admin_address = s.admin;
    let ingress = Ingress::new(opts);
    let admin = bind_admin(s.admin).await?;
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (networking.address, networking.port)",
                s.listen
            )
        })?;
    let admin_ingress = ingress.clone();
    tokio::spawn(async move {
        if let Err(e) = admin_ingress.serve_admin_on(admin).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    let serving = ingress.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    tracing::info!(name = %s.name, listen = %s.listen, admin = %s.admin, "kuma-dp (zone ingress) starting");
    let options = ClientOptions {
        cp_addresses: s.cp_addresses,
        ca_cert_pem: s.ca_cert_pem,
        token: s.token,
        node: NodeInfo {
            mesh: String::new(),
            name: s.name,
            dataplane_json: Some(s.zone_ingress_json),
            csr_pem: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            proxy_type: ProxyType::Ingress,
        },
    };
    let sink: Arc<dyn ProxySink> = Arc::new(IngressSink(ingress.clone()));
    supervise(options, sink, || async move { ingress.drain().await }).await
}

async fn bind_admin(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on the admin address {addr} (networking.admin.port)")
    })
}

/// Runs the control-plane client until it fails for good or SIGTERM/SIGINT arrives; on a
/// signal, leaves the control plane first (so it deletes this proxy's registration), then
/// drains.
async fn supervise<F, Fut>(
    options: ClientOptions,
    sink: Arc<dyn ProxySink>,
    drain: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut client_task = tokio::spawn(client::run(options, sink, stop_rx));
    let signal = wait_for_signal();
    tokio::pin!(signal);
    tokio::select! {
        _ = &mut signal => {
            tracing::info!("stopping: leaving the control plane and draining connections");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut client_task).await;
            drain().await;
            tracing::info!("stopped");
            Ok(())
        }
        res = &mut client_task => {
            drain().await;
            match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(anyhow::anyhow!("control plane client failed: {e}")),
            }
        }
    }
}

pub async fn run(s: Settings) -> anyhow::Result<()> {
    let mut opts = ProxyOptions::new(s.mesh.clone(), s.name.clone());
    opts.admin_address = s.admin;
    opts.workers = s.workers;
    let proxy = Proxy::new(opts).context("cannot start the proxy's worker threads")?;
    let admin = bind_admin(s.admin).await?;
    let admin_proxy = proxy.clone();
    tokio::spawn(async move {
        if let Err(e) = admin_proxy.serve_admin_on(admin).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    tracing::info!(mesh = %s.mesh, name = %s.name, admin = %s.admin, "kuma-dp starting");
    let options = ClientOptions {
        cp_addresses: s.cp_addresses,
        ca_cert_pem: s.ca_cert_pem,
        token: s.token,
        node: NodeInfo {
            mesh: s.mesh,
            name: s.name,
            dataplane_json: Some(s.dataplane_json),
            csr_pem: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            proxy_type: ProxyType::Dataplane,
        },
    };
    let sink: Arc<dyn ProxySink> = Arc::new(Sink(proxy.clone()));
    supervise(options, sink, || async move { proxy.drain().await }).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
