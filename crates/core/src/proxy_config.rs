//! What a proxy (`kuma-dp`) needs to serve traffic, as the control plane computes it and
//! sends it over the CP<->DP stream: its inbounds with their resolved authorization, its
//! outbounds with the live endpoints of each destination, and the mesh's mTLS mode.
//! Certificates travel separately (they rotate on their own clock).
//!
//! Pure data, serde-serialisable, so the control plane, the proxy and the tests share one
//! definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::mtp::InboundAuthz;

/// How the mesh secures traffic between proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum MtlsMode {
    /// mTLS off: plaintext, no identities, no authorization.
    #[default]
    Off,
    /// Inbounds accept only mTLS with a client certificate from the mesh.
    Strict,
    /// Inbounds also accept plaintext (which carries no identity).
    Permissive,
}

/// How the proxy handles a port's traffic (`kuma.io/protocol`; `tcp` when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    #[default]
    Tcp,
    Http,
    Http2,
    Grpc,
}

impl Protocol {
    /// Reads a `kuma.io/protocol` tag value; `kafka` and unknown values are handled as TCP.
    pub fn from_tag(value: Option<&str>) -> Protocol {
        match value {
            Some("http") => Protocol::Http,
            Some("http2") => Protocol::Http2,
            Some("grpc") => Protocol::Grpc,
            _ => Protocol::Tcp,
        }
    }

    /// Whether the proxy terminates HTTP (and can answer a denied request with 403).
    pub fn is_http(self) -> bool {
        !matches!(self, Protocol::Tcp)
    }
}

/// The proxy's whole configuration at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    pub mesh: String,
    /// The Dataplane's name.
    pub name: String,
    pub mtls: MtlsMode,
    pub inbounds: Vec<InboundConfig>,
    pub outbounds: Vec<OutboundConfig>,
}

/// One `networking.inbound`: where the proxy listens, where the application is, and who may
/// call it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundConfig {
    /// The inbound's `name`, or its port as text.
    pub name: String,
    /// Where the proxy listens (IP address).
    pub address: String,
    pub port: u16,
    /// Where the application listens.
    pub service_address: String,
    pub service_port: u16,
    /// `kuma.io/service`.
    pub service: String,
    pub protocol: Protocol,
    pub tags: BTreeMap<String, String>,
    /// `false` for `NotReady` inbounds: the proxy still serves them, but outbounds elsewhere
    /// skip this endpoint.
    pub ready: bool,
    pub authz: InboundAuthz,
}

/// One `networking.outbound`: a local port the application calls, balanced over the
/// destination's live endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundConfig {
    /// Where the proxy listens for the application (default 127.0.0.1).
    pub address: String,
    pub port: u16,
    /// The destination service.
    pub service: String,
    pub protocol: Protocol,
    /// The identity the destination must present: `spiffe://<mesh>/<service>`.
    pub spiffe_id: String,
    /// Online, ready endpoints, in a stable order.
    pub endpoints: Vec<Endpoint>,
}

/// A destination address: another proxy's inbound.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    /// The Dataplane serving it (for logs and stats).
    pub dataplane: String,
}

/// The SPIFFE ID of a service in a mesh (the seed's `spiffe://<mesh>/<service>`).
pub fn spiffe_id(mesh: &str, service: &str) -> String {
    format!("spiffe://{mesh}/{service}")
}
