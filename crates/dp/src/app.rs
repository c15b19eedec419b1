//! Wires the proxy engine to the control-plane client: configs and certificates flow from
//! the stream into [`Proxy`], readiness follows the connection, SIGTERM drains.

use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::proxy_config::ProxyConfig;
use aerie_identity::WorkloadKey;
use aerie_xds::NodeInfo;
use aerie_xds::client::{self, ClientOptions, ProxySink};
use anyhow::Context;
use tokio::sync::watch;

use crate::{Identity, Proxy, ProxyOptions};

/// Everything `kuma-dp run` resolved from its flags.
pub struct Settings {
    pub mesh: String,
    pub name: String,
    pub dataplane_json: String,
    pub admin: SocketAddr,
    pub cp_addresses: Vec<String>,
    pub ca_cert_pem: Option<String>,
    pub token: String,
}

struct Sink(Proxy);

impl ProxySink for Sink {
    fn apply_config(&self, version: &str, cfg: ProxyConfig) -> Result<(), String> {
        self.0.apply_config(version, cfg).map_err(|e| e.to_string())
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

pub async fn run(s: Settings) -> anyhow::Result<()> {
    let mut opts = ProxyOptions::new(s.mesh.clone(), s.name.clone());
    opts.admin_address = s.admin;
    let proxy = Proxy::new(opts);
    let admin = tokio::net::TcpListener::bind(s.admin)
        .await
        .with_context(|| {
            format!(
                "cannot listen on the admin address {} (networking.admin.port)",
                s.admin
            )
        })?;
    let admin_proxy = proxy.clone();
    tokio::spawn(async move {
        if let Err(e) = admin_proxy.serve_admin_on(admin).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    tracing::info!(mesh = %s.mesh, name = %s.name, admin = %s.admin, "kuma-dp starting");
    let (stop_tx, stop_rx) = watch::channel(false);
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
            proxy_type: Default::default(),
        },
    };
    let sink: Arc<dyn ProxySink> = Arc::new(Sink(proxy.clone()));
    let mut client_task = tokio::spawn(client::run(options, sink, stop_rx));
    let signal = wait_for_signal();
    tokio::pin!(signal);
    tokio::select! {
        _ = &mut signal => {
            tracing::info!("stopping: leaving the control plane and draining connections");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut client_task).await;
            proxy.drain().await;
            tracing::info!("stopped");
            Ok(())
        }
        res = &mut client_task => {
            proxy.drain().await;
            match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(anyhow::anyhow!("control plane client failed: {e}")),
            }
        }
    }
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
