//! How resources travel on KDS: each one is an Envoy delta `Resource` named by its key
//! (`<Type>/<mesh>/<name>`, the name it has at the receiver), versioned by a hash of its
//! content, with the Universal JSON form as payload. Content versions make resuming cheap:
//! after a reconnect each side states what it holds (`initial_resource_versions`) and only
//! what differs travels.

use aerie_core::format::{resource_from_value, resource_to_value};
use aerie_core::{Resource, ResourceType};
use envoy_types::pb::envoy::service::discovery::v3::Resource as WireResource;
use envoy_types::pb::google::protobuf::Any;

/// The payload type of a synced resource.
pub const RESOURCE_TYPE: &str = "type.aerie.dev/aerie.kds.v1.Resource+json";
/// The payload type of an online marker: a zone telling the global that one of its proxies
/// is connected (key `Online/<mesh>/<name>`, the Dataplane's name at the global).
pub const ONLINE_TYPE: &str = "type.aerie.dev/aerie.kds.v1.Online";
const ONLINE_PREFIX: &str = "Online/";

/// Something on the wire that is not what KDS allows.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("resource \"{key}\": unexpected payload type \"{found}\"")]
    PayloadType { key: String, found: String },
    #[error("resource \"{key}\": {reason}")]
    Decode { key: String, reason: String },
    #[error("resource \"{key}\" carries {actual}: the key and the resource disagree")]
    KeyMismatch { key: String, actual: String },
}

/// The key of a resource: `<Type>/<mesh>/<name>` (`<Type>//<name>` outside meshes).
pub fn key_of(r: &Resource) -> String {
    key(r.resource_type(), r.mesh(), r.name())
}

pub fn key(t: ResourceType, mesh: &str, name: &str) -> String {
    format!("{}/{mesh}/{name}", t.name())
}

/// Splits a key back into (type, mesh, name).
pub fn parse_key(key: &str) -> Option<(ResourceType, &str, &str)> {
    let (t, rest) = key.split_once('/')?;
    let (mesh, name) = rest.split_once('/')?;
    Some((ResourceType::from_name(t)?, mesh, name))
}

/// The key of an online marker for Dataplane `name` (its name at the global) in `mesh`.
pub fn online_key(mesh: &str, name: &str) -> String {
    format!("{ONLINE_PREFIX}{mesh}/{name}")
}

/// (mesh, name) of an online marker key.
pub fn parse_online_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(ONLINE_PREFIX)?.split_once('/')
}

/// The resource without what the store stamps (version, times): what is compared and sent.
fn canonical(r: &Resource) -> Resource {
    let mut c = r.clone();
    c.meta.version = 0;
    c.meta.creation_time = None;
    c.meta.modification_time = None;
    c
}

fn fnv64a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The canonical JSON of a resource and its content version.
fn canonical_json(r: &Resource) -> (Vec<u8>, String) {
    let json = serde_json::to_vec(&resource_to_value(&canonical(r))).unwrap_or_default();
    let version = format!("{:016x}", fnv64a(&json));
    (json, version)
}

/// The content version of a resource: equal for equal content, whatever the store stamped.
pub fn version_of(r: &Resource) -> String {
    canonical_json(r).1
}

/// Whether two resources have the same content (labels and spec; names are the key).
pub fn same_content(a: &Resource, b: &Resource) -> bool {
    canonical(a) == canonical(b)
}

pub fn encode(r: &Resource) -> WireResource {
    let (json, version) = canonical_json(r);
    WireResource {
        name: key_of(r),
        version,
        resource: Some(Any {
            type_url: RESOURCE_TYPE.into(),
            value: json,
        }),
        ..WireResource::default()
    }
}

pub fn encode_online(mesh: &str, name: &str) -> WireResource {
    WireResource {
        name: online_key(mesh, name),
        version: "1".into(),
        resource: Some(Any {
            type_url: ONLINE_TYPE.into(),
            value: Vec::new(),
        }),
        ..WireResource::default()
    }
}

/// What a received wire resource is.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Resource(Box<Resource>),
    Online { mesh: String, name: String },
}

/// Decodes a received resource, checking that its key names it.
pub fn decode(w: &WireResource) -> Result<Received, WireError> {
    let key = w.name.clone();
    let any = w.resource.as_ref().ok_or_else(|| WireError::Decode {
        key: key.clone(),
        reason: "no payload".into(),
    })?;
    match any.type_url.as_str() {
        ONLINE_TYPE => {
            let (mesh, name) = parse_online_key(&key).ok_or_else(|| WireError::Decode {
                key: key.clone(),
                reason: "not an Online/<mesh>/<name> key".into(),
            })?;
            Ok(Received::Online {
                mesh: mesh.to_string(),
                name: name.to_string(),
            })
        }
        RESOURCE_TYPE => {
            let value: serde_json::Value =
                serde_json::from_slice(&any.value).map_err(|e| WireError::Decode {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            let r = resource_from_value(&value).map_err(|e| WireError::Decode {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            let actual = key_of(&r);
            if actual != key {
                return Err(WireError::KeyMismatch { key, actual });
            }
            Ok(Received::Resource(Box::new(r)))
        }
        other => Err(WireError::PayloadType {
            key,
            found: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::format::parse_yaml_value;

    fn parse(yaml: &str) -> Resource {
        resource_from_value(&parse_yaml_value(yaml).unwrap()).unwrap()
    }

    #[test]
    fn resources_round_trip_with_stable_versions() {
        let mut mtp = parse(
            "type: MeshTrafficPermission\nname: allow\nmesh: default\nlabels: {a: b}\nspec:\n  targetRef: {kind: Mesh}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
        );
        let wire = encode(&mtp);
        assert_eq!(wire.name, "MeshTrafficPermission/default/allow");
        let Received::Resource(back) = decode(&wire).unwrap() else {
            panic!("not a resource")
        };
        assert!(same_content(&back, &mtp));
        // Store stamps do not change the version; content does.
        let v = version_of(&mtp);
        mtp.meta.version = 7;
        mtp.meta.creation_time = Some("2026-01-01T00:00:00Z".into());
        assert_eq!(version_of(&mtp), v);
        mtp.meta.labels.insert("c".into(), "d".into());
        assert_ne!(version_of(&mtp), v);
    }

    #[test]
    fn bad_wire_resources_are_refused() {
        let mesh = parse("type: Mesh\nname: default\n");
        let mut wire = encode(&mesh);
        wire.name = "Mesh//other".into();
        assert!(matches!(decode(&wire), Err(WireError::KeyMismatch { .. })));
        let mut wire = encode(&mesh);
        wire.resource.as_mut().unwrap().value = b"{not json".to_vec();
        assert!(matches!(decode(&wire), Err(WireError::Decode { .. })));
        let mut wire = encode(&mesh);
        wire.resource.as_mut().unwrap().type_url = "x".into();
        assert!(matches!(decode(&wire), Err(WireError::PayloadType { .. })));
        wire.resource = None;
        assert!(decode(&wire).is_err());
        let mut wire = encode(&mesh);
        wire.resource.as_mut().unwrap().value =
            br#"{"type":"Mesh","name":"default","mtls":{"bogus":1}}"#.to_vec();
        assert!(matches!(decode(&wire), Err(WireError::Decode { .. })));
    }

    #[test]
    fn keys_and_online_markers_parse() {
        assert_eq!(
            parse_key("Dataplane/default/web-1"),
            Some((ResourceType::Dataplane, "default", "web-1"))
        );
        assert_eq!(
            parse_key("Mesh//default"),
            Some((ResourceType::Mesh, "", "default"))
        );
        assert_eq!(parse_key("Nope/a/b"), None);
        assert_eq!(parse_key("Mesh"), None);
        let w = encode_online("default", "web-1-abc");
        assert_eq!(
            decode(&w).unwrap(),
            Received::Online {
                mesh: "default".into(),
                name: "web-1-abc".into()
            }
        );
    }
}
