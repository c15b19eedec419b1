//! The CP<->DP protocol.
//!
//! One gRPC stream per proxy: Envoy's `AggregatedDiscoveryService/StreamAggregatedResources`
//! (state of the world), with Envoy's own discovery messages from `envoy-types`, so a stock
//! Envoy could later share the port. Three resources flow on it:
//!
//! | type URL | resource | payload |
//! |---|---|---|
//! | [`PROXY_CONFIG_TYPE`] | `<mesh>.<name>` | the inbound half of the proxy's [`ProxyConfig`], JSON-encoded (an Aerie type: the type URL is not a protobuf one, so no protobuf decoder mistakes it for one) |
//! | [`PROXY_OUTBOUNDS_TYPE`] | `<mesh>.<name>` | the outbound half (endpoints), JSON, versioned on its own |
//! | [`SECRET_TYPE`] | `identity_cert:secret:<mesh>` | Envoy `Secret` with a `TlsCertificate` holding only the certificate chain: the private key never leaves the proxy |
//! | [`SECRET_TYPE`] | `mesh_ca:secret:<mesh>` | Envoy `Secret` with a validation context: the mesh's trust anchors (two during a CA change) |
//!
//! The proxy authenticates with its dataplane token in the `authorization: Bearer` metadata,
//! and describes itself in `Node`: id `<mesh>.<name>`, metadata `dataplane.resource` (the
//! Dataplane as Universal JSON) and `aerie.csr` (a PEM CSR for its freshly generated key; a
//! new CSR asks for a new certificate, which is how rotation works). Versions and nonces
//! follow xDS: a request echoing a response's nonce with that response's version is an ACK;
//! one carrying `error_detail` is a NACK and the proxy keeps its last good config.
//! A proxy that closes its request stream cleanly is leaving (the control plane deletes its
//! Dataplane); a stream that breaks marks it offline.

#![forbid(unsafe_code)]

pub mod client;

pub use client::{ClientError, ClientOptions, ProxySink};

use std::collections::HashMap;

use aerie_core::proxy_config::{IngressConfig, ProxyConfig};
use envoy_types::pb::envoy::config::core::v3::{DataSource, Node, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use prost::Message;

pub use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
};
pub use envoy_types::pb::google::rpc::Status as RpcStatus;

/// The inbound half of the proxy configuration (mTLS mode, inbounds and their authorization;
/// JSON payload of a [`ProxyConfig`] without outbounds).
pub const PROXY_CONFIG_TYPE: &str = "type.aerie.dev/aerie.dp.v1.ProxyConfig+json";
/// The outbound half (outbounds and their endpoints; a [`ProxyConfig`] without inbounds).
/// Separate so that a policy change, which touches only inbounds, does not resend every
/// proxy's endpoint lists (as Envoy keeps listeners and endpoints in separate resources).
pub const PROXY_OUTBOUNDS_TYPE: &str = "type.aerie.dev/aerie.dp.v1.Outbounds+json";
/// A zone ingress's routes ([`IngressConfig`], JSON); the resource is named after the
/// ZoneIngress. An ingress subscribes to this type only: it holds no certificate (it
/// forwards TLS without terminating it).
pub const INGRESS_CONFIG_TYPE: &str = "type.aerie.dev/aerie.dp.v1.IngressConfig+json";
/// Envoy's SDS secret type.
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// Node metadata keys.
pub const META_DATAPLANE: &str = "dataplane.resource";
pub const META_CSR: &str = "aerie.csr";
pub const META_VERSION: &str = "version.kumaDp.version";
/// `dataplane` (the default) or `ingress`, as Kuma's `dataplane.proxyType`.
pub const META_PROXY_TYPE: &str = "dataplane.proxyType";

/// What kind of proxy is on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyType {
    /// A sidecar: node id `<mesh>.<name>`, a Dataplane in `dataplane.resource`.
    #[default]
    Dataplane,
    /// A zone ingress: node id `<name>` (ZoneIngresses belong to no mesh), the ZoneIngress
    /// in `dataplane.resource`.
    Ingress,
}

impl ProxyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Dataplane => "dataplane",
            ProxyType::Ingress => "ingress",
        }
    }
}

/// Kuma's SDS secret names.
pub fn identity_secret_name(mesh: &str) -> String {
    format!("identity_cert:secret:{mesh}")
}

pub fn ca_secret_name(mesh: &str) -> String {
    format!("mesh_ca:secret:{mesh}")
}

/// Something in a message that does not follow the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("node is missing from the first request")]
    NoNode,
    #[error("node id \"{0}\" is not <mesh>.<name>")]
    BadNodeId(String),
    #[error(
        "unknown proxy type \"{0}\" in node metadata dataplane.proxyType (dataplane or ingress)"
    )]
    BadProxyType(String),
    #[error("node metadata lacks {0}")]
    MissingMetadata(&'static str),
    #[error("resource of type {found} where {expected} was expected")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
}

/// What a proxy says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub mesh: String,
    pub name: String,
    /// The Dataplane resource as Universal JSON.
    pub dataplane_json: Option<String>,
    /// A PEM CSR for the proxy's current key.
    pub csr_pem: Option<String>,
    pub version: String,
    pub proxy_type: ProxyType,
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

impl NodeInfo {
    pub fn to_proto(&self) -> Node {
        let mut fields = HashMap::new();
        if let Some(dp) = &self.dataplane_json {
            fields.insert(META_DATAPLANE.to_string(), string_value(dp));
        }
        if let Some(csr) = &self.csr_pem {
            fields.insert(META_CSR.to_string(), string_value(csr));
        }
        fields.insert(META_VERSION.to_string(), string_value(&self.version));
        fields.insert(
            META_PROXY_TYPE.to_string(),
            string_value(self.proxy_type.as_str()),
        );
        let id = match self.proxy_type {
            ProxyType::Dataplane => format!("{}.{}", self.mesh, self.name),
            ProxyType::Ingress => self.name.clone(),
        };
        Node {
            id,
            metadata: Some(Struct { fields }),
            user_agent_name: "kuma-dp (aerie)".into(),
            ..Node::default()
        }
    }

    /// Reads a node. The id splits at the first `.`: mesh names cannot contain dots in
    /// practice (Kuma's convention), dataplane names may.
    pub fn from_proto(node: &Node) -> Result<NodeInfo, ProtocolError> {
        let get = |key: &str| -> Option<String> {
            let fields = &node.metadata.as_ref()?.fields;
            match fields.get(key)?.kind.as_ref()? {
                Kind::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        };
        let proxy_type = match get(META_PROXY_TYPE).as_deref() {
            None | Some("dataplane") => ProxyType::Dataplane,
            Some("ingress") => ProxyType::Ingress,
            Some(other) => return Err(ProtocolError::BadProxyType(other.to_string())),
        };
        let (mesh, name) = match proxy_type {
            ProxyType::Ingress if !node.id.is_empty() => ("", node.id.as_str()),
            ProxyType::Ingress => return Err(ProtocolError::BadNodeId(node.id.clone())),
            ProxyType::Dataplane => node
                .id
                .split_once('.')
                .filter(|(m, n)| !m.is_empty() && !n.is_empty())
                .ok_or_else(|| ProtocolError::BadNodeId(node.id.clone()))?,
        };
        Ok(NodeInfo {
            proxy_type,
            mesh: mesh.to_string(),
            name: name.to_string(),
            dataplane_json: get(META_DATAPLANE),
            csr_pem: get(META_CSR),
            version: get(META_VERSION).unwrap_or_default(),
        })
    }
}

/// Splits a config into its two wire resources: (inbound half, outbound half).
pub fn encode_proxy_config(cfg: &ProxyConfig) -> (Any, Any) {
    let inbound = ProxyConfig {
        outbounds: Vec::new(),
        ..cfg.clone()
    };
    let outbound = ProxyConfig {
        inbounds: Vec::new(),
        ..cfg.clone()
    };
    (
        Any {
            type_url: PROXY_CONFIG_TYPE.into(),
            value: serde_json::to_vec(&inbound).unwrap_or_default(),
        },
        Any {
            type_url: PROXY_OUTBOUNDS_TYPE.into(),
            value: serde_json::to_vec(&outbound).unwrap_or_default(),
        },
    )
}

/// The inbound half alone, byte for byte what [`encode_proxy_config`] gives for it (so its
/// version is the same whichever way it was computed). `cfg.outbounds` is not encoded.
pub fn encode_inbound_half(cfg: &ProxyConfig) -> Any {
    let value = if cfg.outbounds.is_empty() {
        serde_json::to_vec(cfg)
    } else {
        serde_json::to_vec(&ProxyConfig {
            outbounds: Vec::new(),
            ..cfg.clone()
        })
    };
    Any {
        type_url: PROXY_CONFIG_TYPE.into(),
        value: value.unwrap_or_default(),
    }
}

/// The outbound half alone (`cfg.inbounds` is not encoded).
pub fn encode_outbound_half(cfg: &ProxyConfig) -> Any {
    let value = if cfg.inbounds.is_empty() {
        serde_json::to_vec(cfg)
    } else {
        serde_json::to_vec(&ProxyConfig {
            inbounds: Vec::new(),
            ..cfg.clone()
        })
    };
    Any {
        type_url: PROXY_OUTBOUNDS_TYPE.into(),
        value: value.unwrap_or_default(),
    }
}

/// Decodes either half (checking its type URL).
pub fn decode_proxy_config(any: &Any) -> Result<ProxyConfig, ProtocolError> {
    let what = match any.type_url.as_str() {
        PROXY_CONFIG_TYPE => PROXY_CONFIG_TYPE,
        PROXY_OUTBOUNDS_TYPE => PROXY_OUTBOUNDS_TYPE,
        _ => {
            return Err(ProtocolError::WrongType {
                expected: PROXY_CONFIG_TYPE,
                found: any.type_url.clone(),
            });
        }
    };
    serde_json::from_slice(&any.value).map_err(|e| ProtocolError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// The whole config from its halves: mesh, name and mode from the inbound half.
pub fn merge_proxy_config(inbound: &ProxyConfig, outbound: &ProxyConfig) -> ProxyConfig {
    ProxyConfig {
        outbounds: outbound.outbounds.clone(),
        ..inbound.clone()
    }
}

pub fn encode_ingress_config(cfg: &IngressConfig) -> Any {
    Any {
        type_url: INGRESS_CONFIG_TYPE.into(),
        value: serde_json::to_vec(cfg).unwrap_or_default(),
    }
}

pub fn decode_ingress_config(any: &Any) -> Result<IngressConfig, ProtocolError> {
    if any.type_url != INGRESS_CONFIG_TYPE {
        return Err(ProtocolError::WrongType {
            expected: INGRESS_CONFIG_TYPE,
            found: any.type_url.clone(),
        });
    }
    serde_json::from_slice(&any.value).map_err(|e| ProtocolError::Decode {
        what: INGRESS_CONFIG_TYPE,
        reason: e.to_string(),
    })
}

/// The proxy's certificate chain (PEM), without a key.
pub fn encode_identity_secret(mesh: &str, chain_pem: &str) -> Any {
    let secret = Secret {
        name: identity_secret_name(mesh),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(chain_pem.to_string())),
                ..DataSource::default()
            }),
            ..TlsCertificate::default()
        })),
    };
    Any {
        type_url: SECRET_TYPE.into(),
        value: secret.encode_to_vec(),
    }
}

/// The mesh's trust anchors (PEM, one or more certificates).
pub fn encode_ca_secret(mesh: &str, bundle_pem: &str) -> Any {
    let secret = Secret {
        name: ca_secret_name(mesh),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(bundle_pem.to_string())),
                    ..DataSource::default()
                }),
                ..CertificateValidationContext::default()
            },
        )),
    };
    Any {
        type_url: SECRET_TYPE.into(),
        value: secret.encode_to_vec(),
    }
}

/// A decoded secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretPayload {
    Identity { chain_pem: String },
    TrustBundle { pem: String },
}

pub fn decode_secret(any: &Any) -> Result<(String, SecretPayload), ProtocolError> {
    if any.type_url != SECRET_TYPE {
        return Err(ProtocolError::WrongType {
            expected: SECRET_TYPE,
            found: any.type_url.clone(),
        });
    }
    let secret = Secret::decode(any.value.as_slice()).map_err(|e| ProtocolError::Decode {
        what: "Secret",
        reason: e.to_string(),
    })?;
    let inline = |ds: Option<&DataSource>| -> Result<String, ProtocolError> {
        match ds.and_then(|d| d.specifier.as_ref()) {
            Some(data_source::Specifier::InlineString(s)) => Ok(s.clone()),
            Some(data_source::Specifier::InlineBytes(b)) => {
                String::from_utf8(b.clone()).map_err(|_| ProtocolError::Decode {
                    what: "Secret",
                    reason: "inline bytes are not PEM text".into(),
                })
            }
            _ => Err(ProtocolError::Decode {
                what: "Secret",
                reason: "no inline data".into(),
            }),
        }
    };
    let payload = match &secret.r#type {
        Some(secret::Type::TlsCertificate(t)) => SecretPayload::Identity {
            chain_pem: inline(t.certificate_chain.as_ref())?,
        },
        Some(secret::Type::ValidationContext(v)) => SecretPayload::TrustBundle {
            pem: inline(v.trusted_ca.as_ref())?,
        },
        _ => {
            return Err(ProtocolError::Decode {
                what: "Secret",
                reason: "unsupported secret kind".into(),
            });
        }
    };
    Ok((secret.name, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_round_trips() {
        let n = NodeInfo {
            mesh: "default".into(),
            name: "web.01".into(),
            dataplane_json: Some("{}".into()),
            csr_pem: Some("CSR".into()),
            version: "0.1.0".into(),
            proxy_type: Default::default(),
        };
        assert_eq!(NodeInfo::from_proto(&n.to_proto()).unwrap(), n);
        let bad = Node {
            id: "nodot".into(),
            ..Node::default()
        };
        assert!(matches!(
            NodeInfo::from_proto(&bad),
            Err(ProtocolError::BadNodeId(_))
        ));
        let ingress = NodeInfo {
            mesh: String::new(),
            name: "ingress.zone-1".into(),
            dataplane_json: Some("{}".into()),
            csr_pem: None,
            version: "0.1.0".into(),
            proxy_type: ProxyType::Ingress,
        };
        assert_eq!(NodeInfo::from_proto(&ingress.to_proto()).unwrap(), ingress);
        let mut odd = ingress.to_proto();
        odd.metadata
            .as_mut()
            .unwrap()
            .fields
            .insert(META_PROXY_TYPE.into(), string_value("egress"));
        assert!(matches!(
            NodeInfo::from_proto(&odd),
            Err(ProtocolError::BadProxyType(_))
        ));
    }

    #[test]
    fn the_inbound_half_encodes_the_same_either_way() {
        let cfg = ProxyConfig {
            mesh: "m".into(),
            name: "n".into(),
            outbounds: vec![aerie_core::proxy_config::OutboundConfig {
                load_balancer: None,
                address: "127.0.0.1".into(),
                port: 1,
                service: "s".into(),
                protocol: Default::default(),
                spiffe_id: "spiffe://m/s".into(),
                sni: "s.m.mesh".into(),
                endpoints: Vec::new(),
                timeouts: Default::default(),
                retry: Default::default(),
                circuit_breaker: Default::default(),
                health_check: None,
                http_routes: None,
                tcp_routes: None,
                access_log: None,
            }],
            ..ProxyConfig::default()
        };
        let (inbound, outbound) = encode_proxy_config(&cfg);
        assert_eq!(encode_inbound_half(&cfg), inbound);
        assert_eq!(encode_outbound_half(&cfg), outbound);
        let merged = merge_proxy_config(
            &decode_proxy_config(&inbound).unwrap(),
            &decode_proxy_config(&encode_outbound_half(&ProxyConfig {
                name: String::new(),
                ..cfg.clone()
            }))
            .unwrap(),
        );
        assert_eq!(merged, cfg, "the outbound half's name does not matter");
        let bare = ProxyConfig {
            outbounds: Vec::new(),
            ..cfg
        };
        assert_eq!(encode_inbound_half(&bare), inbound);
    }

    #[test]
    fn ingress_config_round_trips() {
        let cfg = IngressConfig {
            name: "ingress".into(),
            routes: vec![aerie_core::proxy_config::IngressRoute {
                sni: "web.default.mesh".into(),
                mesh: "default".into(),
                service: "web".into(),
                endpoints: vec![aerie_core::proxy_config::Endpoint {
                    zone: None,
                    address: "127.0.0.1".into(),
                    port: 8080,
                    dataplane: "web-1".into(),
                    tags: Default::default(),
                }],
            }],
        };
        assert_eq!(
            decode_ingress_config(&encode_ingress_config(&cfg)).unwrap(),
            cfg
        );
        let (inbound, _) = encode_proxy_config(&ProxyConfig::default());
        assert!(decode_ingress_config(&inbound).is_err());
    }

    #[test]
    fn resources_round_trip() {
        let cfg = ProxyConfig {
            mesh: "m".into(),
            name: "n".into(),
            ..ProxyConfig::default()
        };
        let (inb, out) = encode_proxy_config(&cfg);
        assert_eq!(
            (inb.type_url.as_str(), out.type_url.as_str()),
            (PROXY_CONFIG_TYPE, PROXY_OUTBOUNDS_TYPE)
        );
        let merged = merge_proxy_config(
            &decode_proxy_config(&inb).unwrap(),
            &decode_proxy_config(&out).unwrap(),
        );
        assert_eq!(merged, cfg);
        let (name, p) = decode_secret(&encode_identity_secret("m", "PEM")).unwrap();
        assert_eq!(
            (name.as_str(), p),
            (
                "identity_cert:secret:m",
                SecretPayload::Identity {
                    chain_pem: "PEM".into()
                }
            )
        );
        let (name, p) = decode_secret(&encode_ca_secret("m", "CA")).unwrap();
        assert_eq!(
            (name.as_str(), p),
            (
                "mesh_ca:secret:m",
                SecretPayload::TrustBundle { pem: "CA".into() }
            )
        );
        assert!(decode_proxy_config(&encode_ca_secret("m", "x")).is_err());
        let garbage = Any {
            type_url: SECRET_TYPE.into(),
            value: vec![0xff, 0x00, 0x13],
        };
        assert!(decode_secret(&garbage).is_err());
    }
}
