//! KDS messages between the global control plane and its zones: a `DeltaDiscoveryResponse`
//! (resources and removals; what each side receives) decoded resource by resource
//! (`wire::decode`: key, payload type, Universal JSON) and applied to a store as a zone
//! (`Side::Zone`) or as the global (`Side::Global`) would; and a `DeltaDiscoveryRequest`'s
//! `initial_resource_versions`, from which the sender computes what to send. Invariant: once
//! a computed delta is committed, nothing remains to send.
//!
//! Structure-aware: seed resources are mutated as JSON inside valid wire resources; keys,
//! removals and the protobuf bytes are mutated too. The first byte picks the surface.

use std::sync::Arc;

use aerie_core::format::{parse_yaml_value, resource_from_value, resource_to_value};
use aerie_kds::apply::{Side, apply};
use aerie_kds::delta::{Desired, PeerState};
use aerie_kds::wire::{self, RESOURCE_TYPE, Received};
use aerie_kds::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, WireResource};
use aerie_store::SharedStore;
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;
use serde_json::Value;

use super::seeds::{KEYS, RESOURCES};
use crate::{Rng, Target, mutate_bytes, mutate_json};

/// Resources as a zone sends them to the global (its Dataplanes, ZoneIngresses).
const FROM_ZONE: &[&str] = &[
    "type: Dataplane\nmesh: default\nname: web-1\nlabels:\n  kuma.io/origin: zone\n  kuma.io/zone: zone-1\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - port: 10001\n    tags:\n      kuma.io/service: web\n",
    "type: ZoneIngress\nname: ingress-1\nlabels:\n  kuma.io/origin: zone\n  kuma.io/zone: zone-1\nzone: zone-1\nnetworking:\n  address: 10.0.0.5\n  advertisedAddress: 1.2.3.4\n  advertisedPort: 10001\n  port: 10001\n",
];

const KEY_TOKENS: &[&[u8]] = &[
    b"/",
    b"Online/",
    b"Mesh//",
    b"Dataplane/default/",
    b"..",
    b"%2F",
];

pub struct Kds {
    rt: tokio::runtime::Runtime,
    values: Vec<Value>,
    desired: Desired,
}

impl Kds {
    pub fn new() -> Kds {
        let values: Vec<Value> = RESOURCES
            .iter()
            .chain(FROM_ZONE)
            .filter_map(|t| parse_yaml_value(t).ok())
            .filter_map(|v| resource_from_value(&v).ok())
            .map(|r| resource_to_value(&r))
            .collect();
        let desired = values
            .iter()
            .filter_map(|v| resource_from_value(v).ok())
            .map(|r| (wire::key_of(&r), wire::encode(&r)))
            .collect();
        Kds {
            rt: super::runtime(),
            values,
            desired,
        }
    }

    fn wire_resource(&self, rng: &mut Rng) -> WireResource {
        if rng.chance(5) {
            return wire::encode_online("default", "web-1");
        }
        let Some(mut v) = rng.pick(&self.values).cloned() else {
            return WireResource::default();
        };
        let key = resource_from_value(&v)
            .map(|r| wire::key_of(&r))
            .unwrap_or_default();
        if rng.chance(80) {
            mutate_json(&mut v, rng, KEYS);
        }
        let mut w = match resource_from_value(&v) {
            Ok(r) if rng.chance(80) => wire::encode(&r),
            _ => WireResource {
                name: key,
                version: "1".into(),
                resource: Some(Any {
                    type_url: RESOURCE_TYPE.into(),
                    value: serde_json::to_vec(&v).unwrap_or_default(),
                }),
                ..WireResource::default()
            },
        };
        if rng.chance(10) {
            let mut name = w.name.into_bytes();
            mutate_bytes(&mut name, rng, KEY_TOKENS, &[]);
            w.name = String::from_utf8_lossy(&name).into_owned();
        }
        w
    }

    fn removed(&self, rng: &mut Rng) -> Vec<String> {
        (0..rng.below(3))
            .map(|_| {
                let mut key = self
                    .desired
                    .keys()
                    .nth(rng.below(self.desired.len()))
                    .cloned()
                    .unwrap_or_default()
                    .into_bytes();
                if rng.chance(50) {
                    mutate_bytes(&mut key, rng, KEY_TOKENS, &[]);
                }
                String::from_utf8_lossy(&key).into_owned()
            })
            .collect()
    }
}

impl Default for Kds {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Kds {
    fn name(&self) -> &'static str {
        "kds"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let surface = rng.below(3) as u8;
        let mut bytes = if surface < 2 {
            DeltaDiscoveryResponse {
                type_url: RESOURCE_TYPE.into(),
                nonce: "1".into(),
                resources: (0..1 + rng.below(3))
                    .map(|_| self.wire_resource(rng))
                    .collect(),
                removed_resources: self.removed(rng),
                ..DeltaDiscoveryResponse::default()
            }
            .encode_to_vec()
        } else {
            let mut initial: std::collections::HashMap<String, String> = self
                .desired
                .iter()
                .filter(|_| rng.chance(50))
                .map(|(k, w)| (k.clone(), w.version.clone()))
                .collect();
            for key in self.removed(rng) {
                initial.insert(key, format!("{:016x}", rng.next_u64()));
            }
            DeltaDiscoveryRequest {
                type_url: RESOURCE_TYPE.into(),
                initial_resource_versions: initial,
                ..DeltaDiscoveryRequest::default()
            }
            .encode_to_vec()
        };
        if rng.chance(20) {
            mutate_bytes(&mut bytes, rng, &[], &[]);
        }
        let mut input = vec![surface];
        input.extend(bytes);
        input
    }

    fn run(&mut self, input: &[u8]) {
        let Some((surface, bytes)) = input.split_first() else {
            return;
        };
        if surface % 3 == 2 {
            let Ok(req) = DeltaDiscoveryRequest::decode(bytes) else {
                return;
            };
            let mut peer = PeerState::from_initial(req.initial_resource_versions);
            let delta = peer.diff(&self.desired);
            peer.commit(&delta);
            assert!(
                peer.diff(&self.desired).is_empty(),
                "a committed delta leaves something to send"
            );
            return;
        }
        let Ok(msg) = DeltaDiscoveryResponse::decode(bytes) else {
            return;
        };
        let mut upserts = Vec::new();
        for w in &msg.resources {
            if let Ok(Received::Resource(r)) = wire::decode(w) {
                upserts.push(*r);
            }
        }
        let removed: Vec<String> = msg
            .removed_resources
            .into_iter()
            .filter(|k| wire::parse_online_key(k).is_none())
            .collect();
        for key in &removed {
            let _ = wire::parse_key(key);
        }
        let side = if surface % 3 == 0 {
            Side::Zone {
                local_zone: "zone-1",
            }
        } else {
            Side::Global { zone: "zone-1" }
        };
        self.rt.block_on(async {
            let store: SharedStore = Arc::new(aerie_store::MemoryStore::new());
            let _ = store
                .create(super::xds::default_mesh(), "2026-12-05T00:00:00Z")
                .await;
            let _ = apply(&store, side, upserts, removed, "2026-12-05T00:00:00Z").await;
        });
    }
}
