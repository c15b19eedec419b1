//! The xDS stream's messages, both ways.
//!
//! - Control plane side: a proxy's first `DiscoveryRequest` (protobuf) through the DP
//!   server's admission: the node (id, proxy type, metadata), the Dataplane or ZoneIngress it
//!   declares (JSON, parsed and validated), its token (checked against the mesh's key, with
//!   revocations), the addresses it claims, and its CSR.
//! - Proxy side: a `DiscoveryResponse` (protobuf) through the decoders kuma-dp applies
//!   (`decode_proxy_config`, `decode_ingress_config`, `decode_secret`), then the checks of
//!   the config before anything is bound (`Proxy::apply_config`'s plan, the ingress's
//!   `apply_config`) and the certificates of a secret.
//!
//! Structure-aware: the declared resources and configs are mutated as JSON inside valid
//! messages; the protobuf bytes themselves are mutated too. The first byte picks the surface.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use aerie_core::format::{parse_yaml_value, resource_from_value, resource_to_value};
use aerie_core::policies::meshtrafficpermission::InboundAuthz;
use aerie_core::proxy_config::{
    Endpoint, InboundConfig, IngressConfig, IngressRoute, MtlsMode, OutboundConfig, Protocol,
    ProxyConfig,
};
use aerie_core::{Meta, Resource, Spec, spec::MeshSpec};
use aerie_cp::dpserver::fuzzing::{admit_dataplane, admit_ingress};
use aerie_cp::tokens::{KID, TokenIssuer, ZONE_TOKEN_SIGNING_KEY, dataplane_signing_key_name};
use aerie_dp::fuzzing::plan_config;
use aerie_dp::{Ingress, IngressOptions, ProxyOptions};
use aerie_identity::{CertificateAuthority, WorkloadKey, load_cert_chain, sign_token};
use aerie_store::SharedStore;
use aerie_xds::{
    DiscoveryRequest, DiscoveryResponse, INGRESS_CONFIG_TYPE, NodeInfo, PROXY_CONFIG_TYPE,
    PROXY_OUTBOUNDS_TYPE, ProxyType, SECRET_TYPE, SecretPayload, decode_ingress_config,
    decode_proxy_config, decode_secret, encode_ca_secret, encode_identity_secret,
    encode_ingress_config, encode_proxy_config,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;
use serde_json::Value;

use super::seeds::KEYS;
use super::token::{base_claims, fuzz_key, key_secret};
use crate::{Rng, Target, mutate_bytes, mutate_json};

const DATAPLANE: &str = "type: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 10001\n    servicePort: 8080\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n  outbound:\n  - port: 20001\n    tags:\n      kuma.io/service: backend\n";
const ZONE_INGRESS: &str = "type: ZoneIngress\nname: ingress-1\nnetworking:\n  address: 127.0.0.1\n  advertisedAddress: 1.2.3.4\n  advertisedPort: 10001\n  port: 10001\n";

const PROTO_TOKENS: &[&[u8]] = &[
    &[0x0a, 0x00],
    &[0x12, 0xff, 0xff, 0x03],
    &[0x80, 0x80, 0x80, 0x80, 0x10],
    &[0x08, 0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x7a, 0x00],
];

/// Mesh `default`, without mTLS.
pub(crate) fn default_mesh() -> Resource {
    Resource {
        meta: Meta {
            name: "default".into(),
            ..Meta::default()
        },
        spec: Spec::Mesh(MeshSpec::default()),
    }
}

fn json_of(yaml: &str) -> Value {
    parse_yaml_value(yaml)
        .ok()
        .and_then(|v| resource_from_value(&v).ok())
        .map(|r| resource_to_value(&r))
        .unwrap_or_default()
}

fn proxy_config() -> ProxyConfig {
    ProxyConfig {
        mesh: "default".into(),
        name: "web-1".into(),
        mtls: MtlsMode::Strict,
        inbounds: vec![InboundConfig {
            name: "web".into(),
            address: "10.0.0.1".into(),
            port: 10001,
            service_address: "127.0.0.1".into(),
            service_port: 8080,
            service: "web".into(),
            protocol: Protocol::Http,
            tags: BTreeMap::new(),
            ready: true,
            authz: InboundAuthz::allow_all(10001, "default"),
            timeouts: Default::default(),
            fault_injection: None,
            rate_limit: None,
            access_log: None,
        }],
        outbounds: vec![OutboundConfig {
            load_balancer: None,
            address: String::new(),
            port: 20001,
            service: "backend".into(),
            protocol: Protocol::Http,
            spiffe_id: "spiffe://default/backend".into(),
            sni: "backend.default.mesh".into(),
            endpoints: vec![Endpoint {
                zone: None,
                address: "10.0.0.2".into(),
                port: 10001,
                dataplane: "backend-1".into(),
                tags: Default::default(),
            }],
            timeouts: Default::default(),
            retry: Default::default(),
            circuit_breaker: Default::default(),
            health_check: None,
            http_routes: None,
            tcp_routes: None,
            access_log: None,
        }],
        outbound_policies: Vec::new(),
        metrics: None,
        tracing: None,
    }
}

pub struct Xds {
    rt: tokio::runtime::Runtime,
    store: SharedStore,
    issuer: TokenIssuer,
    dataplane_token: String,
    zone_token: String,
    csr: String,
    dataplane: Value,
    zone_ingress: Value,
    /// Seed responses to the proxy: (type URL, payload).
    responses: Vec<Any>,
    proxy_opts: ProxyOptions,
    ingress: Ingress,
}

impl Xds {
    pub fn new() -> Xds {
        let key = fuzz_key();
        let [_, dp_claims, zone_claims] = base_claims();
        let dataplane_token = sign_token(&key, KID, &dp_claims).unwrap_or_default();
        let zone_token = sign_token(&key, KID, &zone_claims).unwrap_or_default();
        let rt = super::runtime();
        let store: SharedStore = Arc::new(aerie_store::MemoryStore::new());
        let issuer = rt.block_on(async {
            for r in [
                default_mesh(),
                key_secret(&key, None, ZONE_TOKEN_SIGNING_KEY),
                key_secret(
                    &key,
                    Some("default"),
                    &dataplane_signing_key_name("default"),
                ),
            ] {
                if let Err(e) = store.create(r, "2026-12-05T00:00:00Z").await {
                    panic!("cannot prepare the store: {e}");
                }
            }
            match TokenIssuer::load_or_create(store.clone()).await {
                Ok(i) => i,
                Err(e) => panic!("cannot load the token issuer: {e:#}"),
            }
        });
        let csr = WorkloadKey::generate()
            .and_then(|k| k.csr_pem())
            .unwrap_or_default();
        let (inbound, outbound) = encode_proxy_config(&proxy_config());
        let mut responses = vec![inbound, outbound];
        responses.push(encode_ingress_config(&IngressConfig {
            name: "ingress-1".into(),
            routes: vec![IngressRoute {
                sni: "backend.default.mesh".into(),
                mesh: "default".into(),
                service: "backend".into(),
                endpoints: vec![Endpoint {
                    zone: None,
                    address: "10.0.0.2".into(),
                    port: 10001,
                    dataplane: "backend-1".into(),
                    tags: Default::default(),
                }],
            }],
        }));
        if let Ok(ca) =
            CertificateAuthority::generate("default", std::time::Duration::from_secs(86_400))
        {
            if let Ok(chain) = ca.sign_workload(
                &csr,
                &["spiffe://default/web".to_string()],
                std::time::Duration::from_secs(3600),
                std::time::SystemTime::now(),
            ) {
                responses.push(encode_identity_secret("default", &chain));
            }
            responses.push(encode_ca_secret("default", ca.cert_pem()));
        }
        Xds {
            rt,
            store,
            issuer,
            dataplane_token,
            zone_token,
            csr,
            dataplane: json_of(DATAPLANE),
            zone_ingress: json_of(ZONE_INGRESS),
            responses,
            proxy_opts: ProxyOptions::new("default", "web-1"),
            ingress: Ingress::new(IngressOptions::new("ingress-1")),
        }
    }

    fn request(&self, rng: &mut Rng, ingress: bool) -> DiscoveryRequest {
        let mut resource = if ingress {
            self.zone_ingress.clone()
        } else {
            self.dataplane.clone()
        };
        if rng.chance(70) {
            mutate_json(&mut resource, rng, KEYS);
        }
        let mut node = NodeInfo {
            mesh: if ingress {
                String::new()
            } else {
                "default".into()
            },
            name: if ingress {
                "ingress-1".into()
            } else {
                "web-1".into()
            },
            dataplane_json: Some(serde_json::to_string(&resource).unwrap_or_default()),
            csr_pem: (!ingress).then(|| self.csr.clone()),
            version: "2.14.0".into(),
            proxy_type: if ingress {
                ProxyType::Ingress
            } else {
                ProxyType::Dataplane
            },
        };
        if rng.chance(10) {
            let mut csr = node.csr_pem.take().unwrap_or_default().into_bytes();
            mutate_bytes(&mut csr, rng, &[], &[]);
            node.csr_pem = Some(String::from_utf8_lossy(&csr).into_owned());
        }
        let mut proto = node.to_proto();
        if rng.chance(10) {
            let mut id = proto.id.into_bytes();
            mutate_bytes(&mut id, rng, &[b".", b""], &[]);
            proto.id = String::from_utf8_lossy(&id).into_owned();
        }
        DiscoveryRequest {
            node: Some(proto),
            type_url: if ingress {
                INGRESS_CONFIG_TYPE
            } else {
                PROXY_CONFIG_TYPE
            }
            .into(),
            ..DiscoveryRequest::default()
        }
    }

    fn response(&self, rng: &mut Rng) -> DiscoveryResponse {
        let mut any = rng.pick(&self.responses).cloned().unwrap_or_default();
        if any.type_url != SECRET_TYPE
            && rng.chance(80)
            && let Ok(mut v) = serde_json::from_slice::<Value>(&any.value)
        {
            mutate_json(
                &mut v,
                rng,
                &[
                    "inbounds",
                    "outbounds",
                    "endpoints",
                    "address",
                    "port",
                    "servicePort",
                    "serviceAddress",
                    "mtls",
                    "sni",
                    "routes",
                    "name",
                    "mesh",
                    "spiffeId",
                    "protocol",
                    "timeouts",
                    "authz",
                ],
            );
            any.value = serde_json::to_vec(&v).unwrap_or_default();
        }
        if rng.chance(3) {
            any.type_url = rng
                .pick(&[
                    PROXY_CONFIG_TYPE,
                    PROXY_OUTBOUNDS_TYPE,
                    INGRESS_CONFIG_TYPE,
                    SECRET_TYPE,
                    "",
                ])
                .copied()
                .unwrap_or_default()
                .into();
        }
        let mut resources = vec![any];
        if rng.chance(20)
            && let Some(more) = rng.pick(&self.responses)
        {
            resources.push(more.clone());
        }
        DiscoveryResponse {
            version_info: "1".into(),
            type_url: resources[0].type_url.clone(),
            nonce: "n".into(),
            resources,
            ..DiscoveryResponse::default()
        }
    }

    fn to_proxy(&self, resp: &DiscoveryResponse) {
        for any in &resp.resources {
            match any.type_url.as_str() {
                PROXY_CONFIG_TYPE | PROXY_OUTBOUNDS_TYPE => {
                    if let Ok(cfg) = decode_proxy_config(any) {
                        let _ = plan_config(&self.proxy_opts, &cfg);
                    }
                }
                INGRESS_CONFIG_TYPE => {
                    if let Ok(cfg) = decode_ingress_config(any) {
                        let _ = self.ingress.apply_config(&resp.version_info, cfg);
                    }
                }
                _ => {
                    if let Ok((_, payload)) = decode_secret(any) {
                        let pem = match payload {
                            SecretPayload::Identity { chain_pem } => chain_pem,
                            SecretPayload::TrustBundle { pem } => pem,
                        };
                        if let Ok(certs) = load_cert_chain(&pem) {
                            for c in &certs {
                                let _ = aerie_identity::verify::not_after(c);
                                let _ = aerie_identity::peer_uri_sans(c);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Default for Xds {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Xds {
    fn name(&self) -> &'static str {
        "xds"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let surface = rng.below(3) as u8;
        let mut bytes = match surface {
            0 => self.request(rng, false).encode_to_vec(),
            1 => self.request(rng, true).encode_to_vec(),
            _ => self.response(rng).encode_to_vec(),
        };
        if rng.chance(25) {
            mutate_bytes(&mut bytes, rng, PROTO_TOKENS, &[]);
        }
        let mut input = vec![surface];
        input.extend(bytes);
        input
    }

    fn run(&mut self, input: &[u8]) {
        let Some((surface, bytes)) = input.split_first() else {
            return;
        };
        let peer = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)));
        match surface % 3 {
            0 => {
                let Ok(req) = DiscoveryRequest::decode(bytes) else {
                    return;
                };
                let _ = self.rt.block_on(admit_dataplane(
                    &self.store,
                    &self.issuer,
                    Some(&self.dataplane_token),
                    &req,
                    peer,
                ));
            }
            1 => {
                let Ok(req) = DiscoveryRequest::decode(bytes) else {
                    return;
                };
                let Some(Ok(node)) = req.node.as_ref().map(NodeInfo::from_proto) else {
                    return;
                };
                let _ = self.rt.block_on(admit_ingress(
                    &self.issuer,
                    Some(&self.zone_token),
                    &node,
                    "zone-1",
                    peer,
                ));
            }
            _ => {
                if let Ok(resp) = DiscoveryResponse::decode(bytes) {
                    self.to_proxy(&resp);
                }
            }
        }
    }
}
