//! A federated zone's KDS client. The leader among the zone's replicas dials the global and
//! keeps both streams open: global -> zone (this zone receives meshes, policies, secrets
//! and other zones' ingresses) and zone -> global (it sends its Dataplanes, MeshServices,
//! ZoneIngresses and which proxies are online). When the global is unreachable the zone
//! keeps serving its proxies from its own copy and retries with backoff; on reconnect
//! only what changed travels.

use std::sync::Arc;
use std::time::Duration;

use aerie_kds::apply::Side;
use aerie_kds::grpc::KdsSyncClient;
use aerie_kds::{DeltaDiscoveryRequest, Node, ZONE_METADATA};
use aerie_store::SharedStore;
use anyhow::Context;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Observed, SharedStats, Source, run_receiver, run_sender, zone_desired, zone_online_markers,
};
use crate::config::{ZoneKds, ZoneToken};

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the zone knows about its link to the global (for logs and `/ready`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LinkState {
    #[default]
    Connecting,
    Connected,
    Down(String),
}

/// Runs until the process stops. `link` reports the state of the connection.
pub async fn run(
    store: SharedStore,
    cfg: ZoneKds,
    mut leader: watch::Receiver<bool>,
    link: watch::Sender<LinkState>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let tls = match tls_config(&cfg) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "KDS: cannot set up TLS to the global control plane; this zone stays disconnected");
            let _ = link.send(LinkState::Down(format!("{e:#}")));
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        let _ = link.send(LinkState::Connecting);
        let outcome = tokio::select! {
            r = connect_and_sync(&store, &cfg, tls.clone(), &link, &metrics) => r,
            _ = leader.wait_for(|l| !*l) => Err(anyhow::anyhow!("this replica is no longer the leader")),
        };
        let (why, was_up) = match outcome {
            Ok(()) => ("the global closed the connection".to_string(), true),
            Err(e) => (format!("{e:#}"), *link.borrow() == LinkState::Connected),
        };
        if was_up {
            backoff = Duration::from_millis(500);
        }
        tracing::warn!(global = %cfg.global_address, error = %why, retry_in = ?backoff, "KDS: not connected to the global control plane; serving proxies from the local copy");
        let _ = link.send(LinkState::Down(why));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What this zone sends the global: its resources, and which of its proxies are online.
struct ZoneSource {
    store: SharedStore,
    zone: String,
}

#[tonic::async_trait]
impl Source for ZoneSource {
    async fn resources(&self) -> Result<aerie_kds::delta::Desired, String> {
        zone_desired(&self.store, &self.zone)
            .await
            .map_err(|e| format!("cannot read the store: {e}"))
    }

    async fn volatile(&self) -> Result<aerie_kds::delta::Desired, String> {
        zone_online_markers(&self.store, &self.zone)
            .await
            .map_err(|e| format!("cannot read which proxies are online: {e}"))
    }
}

fn tls_config(cfg: &ZoneKds) -> anyhow::Result<rustls::ClientConfig> {
    let trust = match &cfg.root_ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read {} (multizone.zone.kds.rootCaFile)",
                    path.display()
                )
            })?;
            aerie_identity::ServerTrust::Roots(
                aerie_identity::load_cert_chain(&pem).with_context(|| {
                    format!("{} (multizone.zone.kds.rootCaFile)", path.display())
                })?,
            )
        }
        None => {
            tracing::warn!(
                "KDS: multizone.zone.kds.tlsSkipVerify is on: the global control plane's certificate is not verified"
            );
            aerie_identity::ServerTrust::SkipVerify
        }
    };
    aerie_identity::client_config(trust, b"h2").context("multizone.zone.kds.rootCaFile")
}

fn token(cfg: &ZoneKds) -> anyhow::Result<Option<String>> {
    Ok(match &cfg.token {
        None => None,
        Some(ZoneToken::Inline(t)) => Some(t.clone()),
        Some(ZoneToken::File(p)) => Some(
            std::fs::read_to_string(p)
                .with_context(|| {
                    format!(
                        "cannot read the zone token {} (multizone.zone.kds.auth.cpToken.path)",
                        p.display()
                    )
                })?
                .trim()
                .to_string(),
        ),
    })
}

async fn connect_and_sync(
    store: &SharedStore,
    cfg: &ZoneKds,
    tls: Arc<rustls::ClientConfig>,
    link: &watch::Sender<LinkState>,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<()> {
    let (host, port) = cfg
        .global_address
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().ok()?,
            ))
        })
        .context("the global address is not HOST:PORT")?;
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| anyhow::anyhow!("\"{host}\" is not a valid host name"))?;
    let connector = {
        let host = host.clone();
        tower::service_fn(move |_: http::Uri| {
            let (host, tls, server_name) = (host.clone(), tls.clone(), server_name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(server_name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {}", cfg.global_address, chain(&e)))?;
    let token = token(cfg)?;
    let mut client = KdsSyncClient::new(channel);

    // global -> zone: this side receives.
    let (g2z_tx, g2z_rx) = mpsc::channel::<Result<DeltaDiscoveryRequest, tonic::Status>>(16);
    let g2z_out = ReceiverStream::new(g2z_rx).filter_map_ok();
    let g2z_in = client
        .global_to_zone_sync(with_auth(g2z_out, &cfg.zone, token.as_deref())?)
        .await
        .map_err(|s| anyhow::anyhow!("the global refused this zone: {}", s.message()))?
        .into_inner();
    // zone -> global: this side sends.
    let (z2g_tx, z2g_rx) = mpsc::channel(16);
    let z2g_out = ReceiverStream::new(z2g_rx).filter_map_ok();
    let z2g_in = client
        .zone_to_global_sync(with_auth(z2g_out, &cfg.zone, token.as_deref())?)
        .await
        .map_err(|s| anyhow::anyhow!("the global refused this zone: {}", s.message()))?
        .into_inner();
    tracing::info!(global = %cfg.global_address, zone = %cfg.zone, "KDS: connected to the global control plane");
    let _ = link.send(LinkState::Connected);

    let node = Node {
        id: cfg.zone.clone(),
        user_agent_name: "kuma-cp (aerie)".into(),
        ..Node::default()
    };
    let first = DeltaDiscoveryRequest {
        node: Some(node),
        ..DeltaDiscoveryRequest::default()
    };
    let receive = run_receiver(
        store.clone(),
        Side::Zone {
            local_zone: &cfg.zone,
        },
        g2z_in,
        g2z_tx,
        first,
        None,
        Observed {
            stats: SharedStats::default(),
            metrics,
        },
    );
    let source = ZoneSource {
        store: store.clone(),
        zone: cfg.zone.clone(),
    };
    let send = run_sender(
        store.clone(),
        z2g_in,
        z2g_tx,
        &source,
        "zone->global",
        Observed {
            stats: SharedStats::default(),
            metrics,
        },
    );
    // The zone -> global stream starts with the global's holdings, which the sender waits
    // for; both run until either ends.
    tokio::select! {
        r = receive => r.map_err(|e| anyhow::anyhow!("global -> zone: {e}")),
        r = send => r.map_err(|e| anyhow::anyhow!("zone -> global: {e}")),
    }
}

/// A KDS request with the zone's name and token in its metadata.
fn with_auth<T>(inner: T, zone: &str, token: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(inner);
    req.metadata_mut()
        .insert(ZONE_METADATA, zone.parse().context("zone name")?);
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}")
                .parse()
                .context("the zone token is not printable")?,
        );
    }
    Ok(req)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Turns a channel of `Result`s into the plain message stream a tonic request takes (an
/// `Err` put on the channel ends the stream).
trait FilterMapOk<T> {
    fn filter_map_ok(self) -> impl tokio_stream::Stream<Item = T> + Send + 'static;
}

impl<T: Send + 'static> FilterMapOk<T> for ReceiverStream<Result<T, tonic::Status>> {
    fn filter_map_ok(self) -> impl tokio_stream::Stream<Item = T> + Send + 'static {
        use tokio_stream::StreamExt;
        self.map_while(Result::ok)
    }
}
