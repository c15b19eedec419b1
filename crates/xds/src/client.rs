//! The DP side of the stream: connect to the control plane, present the dataplane token and
//! a CSR, hand configs and certificates to the proxy, ACK/NACK, rotate the key at 4/5 of the
//! certificate's lifetime, and reconnect with backoff while the proxy keeps serving.
//!
//! A zone ingress ([`ProxyType::Ingress`]) uses the same stream with less on it: it
//! subscribes to [`INGRESS_CONFIG_TYPE`] only, and generates no key and sends no CSR (it
//! forwards TLS without terminating it, so it needs no certificate).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aerie_core::proxy_config::{IngressConfig, ProxyConfig};
use aerie_identity::WorkloadKey;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    AggregatedDiscoveryServiceClient, DiscoveryRequest, DiscoveryResponse, INGRESS_CONFIG_TYPE,
    NodeInfo, PROXY_CONFIG_TYPE, PROXY_OUTBOUNDS_TYPE, ProxyType, SECRET_TYPE, SecretPayload,
    ca_secret_name, decode_ingress_config, decode_proxy_config, decode_secret,
    identity_secret_name,
};

/// Where the proxy's config and certificates go.
pub trait ProxySink: Send + Sync + 'static {
    /// Applies a config at a version; `Err` is sent back as a NACK and the last good config
    /// stays. Borrowed: the client keeps the halves it merged from (a policy change sends
    /// only the inbound half), and the sink copies only what it keeps.
    fn apply_config(&self, version: &str, cfg: &ProxyConfig) -> Result<(), String>;
    /// Applies a certificate chain for `key`, with the mesh's trust anchors.
    fn apply_identity(
        &self,
        chain_pem: &str,
        key: &WorkloadKey,
        trust_bundle_pem: &str,
    ) -> Result<(), String>;
    /// Whether the control plane stream is up (for readiness and logs).
    fn set_connected(&self, connected: bool);
    /// Applies a zone ingress's routes at a version (ingress proxies only); `Err` is sent
    /// back as a NACK and the last good config stays. Sidecar sinks keep the default, which
    /// refuses.
    fn apply_ingress(&self, version: &str, cfg: IngressConfig) -> Result<(), String> {
        let _ = (version, cfg);
        Err("this proxy is not a zone ingress".into())
    }
}

/// How to reach and authenticate to the control plane.
#[derive(Clone)]
pub struct ClientOptions {
    /// `https://host:port` (or several, tried in turn).
    pub cp_addresses: Vec<String>,
    /// PEM of the CA that signed the CP's certificate; `None` = do not verify (warned).
    pub ca_cert_pem: Option<String>,
    /// The dataplane token (for an ingress, its zone token).
    pub token: String,
    /// Mesh, name, Dataplane (or ZoneIngress) JSON, version and proxy type; the CSR is
    /// filled in here, for sidecars only.
    pub node: NodeInfo,
}

/// Why the client stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid control plane address \"{0}\": expected https://host:port")]
    BadAddress(String),
    #[error("the control plane refused this proxy: {0}")]
    Refused(String),
    #[error("{0}")]
    Key(String),
}

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs until `shutdown` turns true. Refusals that retrying cannot fix (bad token, invalid
/// Dataplane) end the client with an error; everything else is retried with backoff.
pub async fn run(
    opts: ClientOptions,
    sink: Arc<dyn ProxySink>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let targets: Vec<(String, String, u16)> = opts
        .cp_addresses
        .iter()
        .map(|a| parse_address(a))
        .collect::<Result<_, _>>()?;
    if targets.is_empty() {
        return Err(ClientError::BadAddress(String::new()));
    }
    if opts.ca_cert_pem.is_none() {
        tracing::warn!(
            "--ca-cert-file not set: the control plane's certificate is NOT verified; anyone who can intercept the connection can impersonate it"
        );
    }
    let tls = Arc::new(tls_config(opts.ca_cert_pem.as_deref())?);
    // An ingress holds no certificate: no key, no CSR.
    let mut keys = match opts.node.proxy_type {
        ProxyType::Dataplane => Some(Keys::new()?),
        ProxyType::Ingress => None,
    };
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0usize;
    loop {
        let (addr, host, port) = &targets[attempt % targets.len()];
        attempt += 1;
        let outcome = session(
            addr,
            host,
            *port,
            tls.clone(),
            &opts,
            &sink,
            &mut keys,
            &mut shutdown,
        )
        .await;
        sink.set_connected(false);
        match outcome {
            Outcome::Shutdown => return Ok(()),
            Outcome::Fatal(why) => return Err(ClientError::Refused(why)),
            Outcome::Retry { why, was_up } => {
                if was_up {
                    backoff = Duration::from_millis(200);
                }
                tracing::warn!(cp = %addr, error = %why, retry_in = ?backoff, "no config from the control plane yet or any more; retrying, serving with the last config");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = async { shutdown.wait_for(|s| *s).await.is_ok() } => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn parse_address(a: &str) -> Result<(String, String, u16), ClientError> {
    let bad = || ClientError::BadAddress(a.to_string());
    let rest = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("grpcs://"))
        .ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let bracketed_v6 = rest.starts_with('[') && rest.ends_with(']');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !bracketed_v6 => (h, p.parse::<u16>().map_err(|_| bad())?),
        _ => (rest, 5678),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(bad());
    }
    Ok((a.to_string(), host, port))
}

/// The proxy's current key and, during a rotation, the next one.
struct Keys {
    current: WorkloadKey,
    current_csr: String,
    next: Option<(WorkloadKey, String)>,
}

impl Keys {
    fn new() -> Result<Self, ClientError> {
        let current = WorkloadKey::generate().map_err(|e| ClientError::Key(e.to_string()))?;
        let current_csr = current
            .csr_pem()
            .map_err(|e| ClientError::Key(e.to_string()))?;
        Ok(Keys {
            current,
            current_csr,
            next: None,
        })
    }

    /// The CSR the control plane should sign now.
    fn csr(&self) -> &str {
        self.next
            .as_ref()
            .map(|(_, c)| c.as_str())
            .unwrap_or(&self.current_csr)
    }

    /// Starts a rotation: a fresh key whose CSR goes out with the next request.
    fn rotate(&mut self) -> Result<(), ClientError> {
        let key = WorkloadKey::generate().map_err(|e| ClientError::Key(e.to_string()))?;
        let csr = key.csr_pem().map_err(|e| ClientError::Key(e.to_string()))?;
        self.next = Some((key, csr));
        Ok(())
    }

    /// The key a certificate was issued for (the next key, after which it becomes current).
    fn key_for(&mut self, leaf: &CertificateDer<'_>) -> Option<&WorkloadKey> {
        let spki = leaf_spki(leaf)?;
        if let Some((next, _)) = &self.next
            && next.public_key_der() == spki
            && let Some((key, csr)) = self.next.take()
        {
            self.current = key;
            self.current_csr = csr;
        }
        (self.current.public_key_der() == spki).then_some(&self.current)
    }
}

fn leaf_spki(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

/// Why [`channel`] failed.
#[derive(Debug)]
pub enum ChannelError {
    /// The host cannot be a TLS server name, or host and port no URI: retrying cannot help.
    BadAddress(String),
    /// The connection or its TLS handshake failed.
    Connect(String),
}

/// A gRPC channel to a control plane's DP server at `host:port` over TLS (`tls` says whom
/// to trust), with the proxy's connect timeout and HTTP/2 keep-alives.
pub async fn channel(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
) -> Result<tonic::transport::Channel, ChannelError> {
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|_| ChannelError::BadAddress(format!("\"{host}\" is not a valid host name")))?;
    let connector = {
        let host = host.to_string();
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
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| ChannelError::BadAddress(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10));
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| ChannelError::Connect(error_chain(&e)))
}

enum Outcome {
    Shutdown,
    Fatal(String),
    Retry { why: String, was_up: bool },
}

#[allow(clippy::too_many_arguments)]
async fn session(
    addr: &str,
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    opts: &ClientOptions,
    sink: &Arc<dyn ProxySink>,
    keys: &mut Option<Keys>,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    let channel = match channel(host, port, tls).await {
        Ok(c) => c,
        Err(ChannelError::BadAddress(why)) => return Outcome::Fatal(format!("{addr}: {why}")),
        Err(ChannelError::Connect(why)) => {
            return Outcome::Retry {
                why: format!("cannot connect: {why}"),
                was_up: false,
            };
        }
    };
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let (req_tx, req_rx) = mpsc::channel::<DiscoveryRequest>(16);
    let node = |csr: Option<&str>| {
        let mut n = opts.node.clone();
        n.csr_pem = csr.map(str::to_string);
        n.to_proto()
    };
    let mesh = opts.node.mesh.clone();
    let subscribe = |type_url: &str, resource_names: Vec<String>| DiscoveryRequest {
        node: Some(node(csr(keys))),
        type_url: type_url.into(),
        resource_names,
        ..Default::default()
    };
    let first = match opts.node.proxy_type {
        ProxyType::Dataplane => vec![
            subscribe(PROXY_CONFIG_TYPE, Vec::new()),
            subscribe(PROXY_OUTBOUNDS_TYPE, Vec::new()),
            subscribe(
                SECRET_TYPE,
                vec![identity_secret_name(&mesh), ca_secret_name(&mesh)],
            ),
        ],
        ProxyType::Ingress => vec![subscribe(INGRESS_CONFIG_TYPE, Vec::new())],
    };
    for r in first {
        let _ = req_tx.send(r).await;
    }
    let mut request = tonic::Request::new(ReceiverStream::new(req_rx));
    match format!("Bearer {}", opts.token).parse() {
        Ok(v) => {
            request.metadata_mut().insert("authorization", v);
        }
        Err(_) => {
            return Outcome::Fatal(
                "the dataplane token contains characters not allowed in a header".into(),
            );
        }
    }
    let mut responses = match client.stream_aggregated_resources(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return classify(status, false),
    };
    let mut up = false;
    let mut halves = Halves::default();
    let mut rotate_at: Option<tokio::time::Instant> = None;
    let mut last_secret: (String, String) = (String::new(), String::new());
    loop {
        let rotation = async {
            match rotate_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = responses.message() => match msg {
                Ok(Some(resp)) => {
                    if !up {
                        up = true;
                        sink.set_connected(true);
                        tracing::info!(cp = %addr, "connected to the control plane");
                    }
                    let (ack, next_rotation) = handle_response(&resp, opts.node.proxy_type, sink.as_ref(), keys, &mut halves);
                    if resp.type_url == SECRET_TYPE {
                        last_secret = (resp.version_info.clone(), resp.nonce.clone());
                        if let Some(t) = next_rotation {
                            rotate_at = Some(t);
                        }
                    }
                    if req_tx.send(ack).await.is_err() {
                        return Outcome::Retry { why: "request stream closed".into(), was_up: up };
                    }
                }
                Ok(None) => return Outcome::Retry { why: "the control plane closed the stream".into(), was_up: up },
                Err(status) => return classify(status, up),
            },
            _ = rotation => {
                rotate_at = None;
                // Only set from a certificate, which only sidecars (with keys) receive.
                let Some(keys) = keys.as_mut() else { continue };
                if let Err(e) = keys.rotate() {
                    tracing::error!(error = %e, "cannot generate a new key; keeping the current certificate");
                    continue;
                }
                tracing::info!("certificate at 4/5 of its lifetime: requesting a new one");
                let req = DiscoveryRequest {
                    node: Some(node(Some(keys.csr()))),
                    type_url: SECRET_TYPE.into(),
                    resource_names: vec![identity_secret_name(&mesh), ca_secret_name(&mesh)],
                    version_info: last_secret.0.clone(),
                    response_nonce: last_secret.1.clone(),
                    ..Default::default()
                };
                if req_tx.send(req).await.is_err() {
                    return Outcome::Retry { why: "request stream closed".into(), was_up: up };
                }
            }
            _ = async { shutdown.wait_for(|s| *s).await.is_ok() } => {
                // Closing our half of the stream tells the control plane we are leaving.
                drop(req_tx);
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Ok(Some(_)) = responses.message().await {}
                }).await;
                return Outcome::Shutdown;
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Authentication and validation refusals will not change by retrying; anything else
/// (`Unavailable`: the control plane is not ready for this proxy yet, say a zone still
/// waiting for a signing key from its global; transport errors) is retried with backoff,
/// the control plane's reason logged at each attempt.
fn classify(status: tonic::Status, was_up: bool) -> Outcome {
    use tonic::Code;
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument => {
            Outcome::Fatal(status.message().to_string())
        }
        _ => Outcome::Retry {
            why: format!("{}: {}", status.code(), status.message()),
            was_up,
        },
    }
}

/// The two halves of the config as last received: (version, config) each. The proxy gets
/// the merged config once both are known, and again whenever either changes.
#[derive(Default)]
struct Halves {
    inbound: Option<(String, ProxyConfig)>,
    outbound: Option<(String, ProxyConfig)>,
}

impl Halves {
    /// Records one half and applies the merge; on failure the half is rolled back.
    fn apply(&mut self, sink: &dyn ProxySink, resp: &DiscoveryResponse) -> Result<(), String> {
        let cfg = match resp.resources.first().map(decode_proxy_config) {
            Some(Ok(cfg)) => cfg,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("empty config response".into()),
        };
        let slot = if resp.type_url == PROXY_CONFIG_TYPE {
            &mut self.inbound
        } else {
            &mut self.outbound
        };
        let previous = slot.replace((resp.version_info.clone(), cfg));
        let (Some((iv, inbound)), Some((ov, outbound))) = (&mut self.inbound, &mut self.outbound)
        else {
            return Ok(()); // the other half is on its way
        };
        // Merge by moving the outbounds in and back out: no copy of the endpoint lists.
        let mut merged = std::mem::take(inbound);
        merged.outbounds = std::mem::take(&mut outbound.outbounds);
        let result = sink.apply_config(&format!("{iv}.{ov}"), &merged);
        outbound.outbounds = std::mem::take(&mut merged.outbounds);
        *inbound = merged;
        if result.is_err() {
            let slot = if resp.type_url == PROXY_CONFIG_TYPE {
                &mut self.inbound
            } else {
                &mut self.outbound
            };
            *slot = previous;
        }
        result
    }
}

/// The CSR to present, if this proxy has keys (sidecars do, an ingress does not).
fn csr(keys: &Option<Keys>) -> Option<&str> {
    keys.as_ref().map(Keys::csr)
}

/// Applies one response; returns the ACK/NACK to send and, for a new certificate, when to
/// rotate. A type this kind of proxy did not subscribe to is NACKed.
fn handle_response(
    resp: &DiscoveryResponse,
    proxy_type: ProxyType,
    sink: &dyn ProxySink,
    keys: &mut Option<Keys>,
    halves: &mut Halves,
) -> (DiscoveryRequest, Option<tokio::time::Instant>) {
    let mut rotation = None;
    let result: Result<(), String> = match (proxy_type, resp.type_url.as_str(), keys.as_mut()) {
        (ProxyType::Dataplane, PROXY_CONFIG_TYPE | PROXY_OUTBOUNDS_TYPE, _) => {
            halves.apply(sink, resp)
        }
        (ProxyType::Dataplane, SECRET_TYPE, Some(keys)) => {
            apply_secrets(resp, sink, keys).map(|r| rotation = r)
        }
        (ProxyType::Ingress, INGRESS_CONFIG_TYPE, _) => apply_ingress(resp, sink),
        (_, other, _) => Err(format!(
            "unexpected resource type {other} for a {} proxy",
            proxy_type.as_str()
        )),
    };
    // The node travels in the first requests of the stream (and with a new CSR); an ACK
    // names only what it acknowledges, as Envoy does with `set_node_on_first_message_only`.
    let mut ack = DiscoveryRequest {
        node: None,
        type_url: resp.type_url.clone(),
        response_nonce: resp.nonce.clone(),
        version_info: resp.version_info.clone(),
        ..Default::default()
    };
    if let Err(e) = result {
        tracing::warn!(type_url = %resp.type_url, error = %e, "rejecting the control plane's update (NACK); keeping the last good one");
        ack.version_info = String::new();
        ack.error_detail = Some(RpcStatus {
            code: 3,
            message: e,
            details: Vec::new(),
        });
    }
    (ack, rotation)
}

/// An ingress config response carries exactly one resource, named after the ingress.
fn apply_ingress(resp: &DiscoveryResponse, sink: &dyn ProxySink) -> Result<(), String> {
    let [any] = resp.resources.as_slice() else {
        return Err(format!(
            "expected one ingress config resource, got {}",
            resp.resources.len()
        ));
    };
    let cfg = decode_ingress_config(any).map_err(|e| e.to_string())?;
    sink.apply_ingress(&resp.version_info, cfg)
}

fn apply_secrets(
    resp: &DiscoveryResponse,
    sink: &dyn ProxySink,
    keys: &mut Keys,
) -> Result<Option<tokio::time::Instant>, String> {
    let mut chain = None;
    let mut bundle = None;
    for any in &resp.resources {
        match decode_secret(any).map_err(|e| e.to_string())? {
            (_, SecretPayload::Identity { chain_pem }) => chain = Some(chain_pem),
            (_, SecretPayload::TrustBundle { pem }) => bundle = Some(pem),
        }
    }
    let (Some(chain), Some(bundle)) = (chain, bundle) else {
        return Err("the secrets response lacks the certificate or the trust bundle".into());
    };
    let certs = aerie_identity::load_cert_chain(&chain).map_err(|e| format!("certificate: {e}"))?;
    let leaf = certs.first().ok_or("empty certificate chain")?;
    let key = keys
        .key_for(leaf)
        .ok_or("the certificate does not match any key of this proxy")?;
    sink.apply_identity(&chain, key, &bundle)?;
    // Rotate at 4/5 of the lifetime, as Kuma does.
    let not_after = aerie_identity::verify::not_after(leaf).map_err(|e| e.to_string())?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let not_before = std::time::UNIX_EPOCH
        + Duration::from_secs(parsed.validity().not_before.timestamp().max(0) as u64);
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let rotate_at = not_before + lifetime.mul_f64(0.8);
    let wait = rotate_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Ok(Some(tokio::time::Instant::now() + wait))
}

fn tls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, ClientError> {
    let trust = match ca_pem {
        Some(pem) => aerie_identity::ServerTrust::Roots(
            aerie_identity::load_cert_chain(pem)
                .map_err(|e| ClientError::Key(format!("--ca-cert-file: {e}")))?,
        ),
        None => aerie_identity::ServerTrust::SkipVerify,
    };
    aerie_identity::client_config(trust, b"h2")
        .map_err(|e| ClientError::Key(format!("--ca-cert-file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("https://localhost:5678").unwrap().1,
            "localhost"
        );
        assert_eq!(parse_address("https://127.0.0.2:6000").unwrap().2, 6000);
        assert_eq!(parse_address("https://cp").unwrap().2, 5678);
        assert_eq!(parse_address("https://[::1]:5678").unwrap().1, "::1");
        for bad in [
            "localhost:5678",
            "http://x:1",
            "https://:5",
            "https://x:notaport",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_refusals_retrying_cannot_fix_are_fatal() {
        use tonic::{Code, Status};
        for code in [
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::InvalidArgument,
        ] {
            match classify(Status::new(code, "no"), true) {
                Outcome::Fatal(why) => assert_eq!(why, "no"),
                _ => panic!("{code:?} must be fatal"),
            }
        }
        for code in [
            Code::Unavailable,
            Code::FailedPrecondition,
            Code::Unknown,
            Code::Internal,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::ResourceExhausted,
        ] {
            match classify(Status::new(code, "not yet"), false) {
                Outcome::Retry { why, was_up } => {
                    assert!(why.ends_with(": not yet"), "{why}");
                    assert!(!was_up);
                }
                _ => panic!("{code:?} must be retried"),
            }
        }
    }

    #[test]
    fn keys_rotate_only_when_the_new_certificate_arrives() {
        let mut keys = Keys::new().unwrap();
        let first_csr = keys.csr().to_string();
        keys.rotate().unwrap();
        assert_ne!(keys.csr(), first_csr, "a rotation asks for the new key");
        let ca =
            aerie_identity::CertificateAuthority::generate("m", Duration::from_secs(3600)).unwrap();
        let sans = vec!["spiffe://m/s".to_string()];
        // A certificate for the old key (issued before the CP saw the new CSR) still matches.
        let old = ca
            .sign_workload(
                &first_csr,
                &sans,
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap();
        let old = aerie_identity::load_cert_chain(&old).unwrap();
        assert!(keys.key_for(&old[0]).is_some());
        assert!(keys.next.is_some(), "still rotating");
        let new = ca
            .sign_workload(
                keys.csr(),
                &sans,
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap();
        let new = aerie_identity::load_cert_chain(&new).unwrap();
        assert!(keys.key_for(&new[0]).is_some());
        assert!(keys.next.is_none(), "rotation done");
        assert!(keys.key_for(&old[0]).is_none(), "the old key is gone");
    }
}
