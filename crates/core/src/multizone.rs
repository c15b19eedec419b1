//! The rules of a multi-zone deployment that do not need I/O: which resource types travel
//! in which direction over KDS, how synced resources are named and labelled, which types a
//! zone control plane may not change, and how a zone ingress recognises a destination from
//! the TLS server name.
//!
//! Names follow Kuma: a resource synced to another control plane is stored there as
//! `<name>-<16 hex digits of FNV-1a 64>` of its origin key, with the original name kept in
//! the label `kuma.io/display-name`, `kuma.io/origin` saying where it came from and, for
//! resources from a zone, `kuma.io/zone` saying which.

use crate::{Resource, ResourceType};

/// `global` or `zone`: where a resource was created.
pub const ORIGIN_LABEL: &str = "kuma.io/origin";
/// The zone a resource came from.
pub const ZONE_LABEL: &str = "kuma.io/zone";
/// The name a synced resource has where it was created.
pub const DISPLAY_NAME_LABEL: &str = "kuma.io/display-name";
pub const ORIGIN_GLOBAL: &str = "global";
pub const ORIGIN_ZONE: &str = "zone";

/// FNV-1a, 64 bits, over the parts separated by NUL bytes.
fn fnv64a(parts: &[&str]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i > 0 { &[0] } else { &[] };
        for &b in sep.iter().chain(part.as_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// `<name>-<hash>`: the name a resource gets where it is synced to. `parts` identify the
/// origin (the mesh, and for zone resources the zone) so that equal names from different
/// meshes or zones never collide. Names stay within Kuma's 253-character limit.
pub fn hashed_name(name: &str, parts: &[&str]) -> String {
    let mut all = Vec::with_capacity(parts.len() + 1);
    all.push(name);
    all.extend_from_slice(parts);
    let suffix = format!("{:016x}", fnv64a(&all));
    let keep = name.len().min(253 - 17);
    let mut cut = keep;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{suffix}", &name[..cut])
}

/// What a global control plane sends to its zones: resources of the types whose descriptor
/// says so ([`crate::TypeDescriptor::to_zones`]), filtered per resource.
pub fn syncs_global_to_zone(r: &Resource) -> bool {
    let t = r.resource_type();
    if !t.descriptor().to_zones {
        return false;
    }
    if t.is_policy() {
        // Policies made on the global (a zone's own stay in that zone).
        return origin(r) != Some(ORIGIN_ZONE);
    }
    match t {
        // Other zones' ingresses: how this zone reaches their services.
        ResourceType::ZoneIngress => origin(r) == Some(ORIGIN_ZONE),
        // The global secrets zones need to check zone tokens: the public key and the
        // revoked token ids.
        ResourceType::GlobalSecret => global_secret_syncs_to_zones(r.name()),
        _ => true,
    }
}

/// Types a zone control plane sends to the global one: its own resources, never the
/// copies it received (those carry `kuma.io/origin: global` or another zone's name).
pub fn syncs_zone_to_global(r: &Resource, local_zone: &str) -> bool {
    r.resource_type().descriptor().to_global && !is_copy_on_zone(r, local_zone)
}

/// Whether a resource on a zone control plane is a copy received from the global (and so
/// replaced or removed by the next sync), rather than the zone's own.
pub fn is_copy_on_zone(r: &Resource, local_zone: &str) -> bool {
    match origin(r) {
        Some(ORIGIN_GLOBAL) => true,
        Some(ORIGIN_ZONE) => r
            .meta
            .labels
            .get(ZONE_LABEL)
            .is_some_and(|z| z != local_zone),
        _ => false,
    }
}

/// The GlobalSecret holding the public half of the global's zone-token signing key.
pub const ZONE_TOKEN_PUBLIC_KEY: &str = "zone-token-signing-public-key-1";
/// The GlobalSecret listing revoked zone token ids (base64 of a comma-separated list, as in
/// Kuma). Made on the global; zones get a read-only copy and check ingress tokens against it.
pub const ZONE_TOKEN_REVOCATIONS: &str = "zone-token-revocations";

/// Whether the GlobalSecret `name` travels from the global to its zones: only what a zone
/// needs to check zone tokens (never a private key, nor the user-token secrets).
pub fn global_secret_syncs_to_zones(name: &str) -> bool {
    name == ZONE_TOKEN_PUBLIC_KEY || name == ZONE_TOKEN_REVOCATIONS
}

/// Types only the global control plane may change; a zone holds read-only copies.
pub fn is_global_only(t: ResourceType) -> bool {
    matches!(
        t,
        ResourceType::Mesh | ResourceType::Secret | ResourceType::GlobalSecret | ResourceType::Zone
    )
}

/// Types that come from zones; the global holds read-only copies.
pub fn is_zone_owned(t: ResourceType) -> bool {
    matches!(
        t,
        ResourceType::Dataplane | ResourceType::MeshService | ResourceType::ZoneIngress
    )
}

/// The `kuma.io/origin` label of a resource.
pub fn origin(r: &Resource) -> Option<&str> {
    r.meta.labels.get(ORIGIN_LABEL).map(String::as_str)
}

/// The copy of a global resource a zone stores: policies get a hashed name (the original
/// in `kuma.io/display-name`); everything is labelled `kuma.io/origin: global`. Meshes,
/// secrets and other zones' ingresses keep their names: proxies and control planes look
/// them up by name.
pub fn to_zone_copy(r: &Resource) -> Resource {
    let mut copy = r.clone();
    copy.meta.version = 0;
    copy.meta.creation_time = None;
    copy.meta.modification_time = None;
    if r.resource_type().is_policy() {
        copy.meta.name = hashed_name(r.name(), &[r.mesh()]);
        copy.meta
            .labels
            .entry(DISPLAY_NAME_LABEL.into())
            .or_insert_with(|| r.name().to_string());
    }
    if r.resource_type() != ResourceType::ZoneIngress {
        copy.meta
            .labels
            .insert(ORIGIN_LABEL.into(), ORIGIN_GLOBAL.into());
    }
    copy
}

/// The copy of a zone's resource the global stores: `<name>-<hash(mesh, zone)>`, labelled
/// with the zone, the origin and the original name.
pub fn to_global_copy(r: &Resource, zone: &str) -> Resource {
    let mut copy = r.clone();
    copy.meta.version = 0;
    copy.meta.creation_time = None;
    copy.meta.modification_time = None;
    copy.meta.name = hashed_name(r.name(), &[r.mesh(), zone]);
    let labels = &mut copy.meta.labels;
    labels.insert(DISPLAY_NAME_LABEL.into(), r.name().to_string());
    labels.insert(ORIGIN_LABEL.into(), ORIGIN_ZONE.into());
    labels.insert(ZONE_LABEL.into(), zone.to_string());
    if let crate::Spec::ZoneIngress(spec) = &mut copy.spec
        && spec.zone.is_empty()
    {
        spec.zone = zone.to_string();
    }
    copy
}

/// The TLS server name an outbound sends for `service` in `mesh`: `<service>.<mesh>.mesh`.
/// A zone ingress routes on it without terminating TLS (its route table is keyed by this
/// exact string, so it never needs to be parsed back); sidecars ignore it (they check
/// certificates, not names). A name that is not already a plain DNS label (Kuma service
/// names often hold `_`, and may be long) becomes a readable lower-case prefix plus a hash
/// of the exact name, so every label fits in 63 characters and distinct names stay distinct.
pub fn service_sni(mesh: &str, service: &str) -> String {
    format!("{}.{}.mesh", sni_label(service), sni_label(mesh))
}

fn sni_label(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.get(2..4) != Some("--");
    if plain {
        return name.to_string();
    }
    let readable: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let readable = readable.trim_matches('-');
    let hash = format!("{:016x}", fnv64a(&[name]));
    if readable.is_empty() {
        format!("h{hash}")
    } else {
        format!("{readable}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse_yaml_value, resource_from_value};

    fn parse(yaml: &str) -> Resource {
        resource_from_value(&parse_yaml_value(yaml).unwrap()).unwrap()
    }

    #[test]
    fn hashed_names_are_stable_and_distinct() {
        let a = hashed_name("allow-all", &["default"]);
        assert_eq!(a, hashed_name("allow-all", &["default"]));
        assert!(a.starts_with("allow-all-"));
        assert_eq!(a.len(), "allow-all-".len() + 16);
        assert_ne!(a, hashed_name("allow-all", &["other"]));
        assert_ne!(
            hashed_name("dp", &["default", "zone-1"]),
            hashed_name("dp", &["default", "zone-2"])
        );
        // Joining with a separator: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(hashed_name("ab", &["c"]), hashed_name("a", &["bc"]));
        let long = "a".repeat(253);
        assert!(hashed_name(&long, &["m"]).len() <= 253);
    }

    #[test]
    fn zone_copies_of_policies_are_renamed_and_labelled() {
        let mtp = parse(
            "type: MeshTrafficPermission\nname: allow-all\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
        );
        assert!(syncs_global_to_zone(&mtp));
        let copy = to_zone_copy(&mtp);
        assert_eq!(copy.name(), hashed_name("allow-all", &["default"]));
        assert_eq!(copy.meta.labels[DISPLAY_NAME_LABEL], "allow-all");
        assert_eq!(copy.meta.labels[ORIGIN_LABEL], ORIGIN_GLOBAL);
        let mesh = parse("type: Mesh\nname: default\n");
        assert_eq!(to_zone_copy(&mesh).name(), "default");
        let mut zone_policy = mtp.clone();
        zone_policy
            .meta
            .labels
            .insert(ORIGIN_LABEL.into(), ORIGIN_ZONE.into());
        assert!(!syncs_global_to_zone(&zone_policy));
    }

    #[test]
    fn zones_get_the_zone_token_public_key_and_revocations_only() {
        let secret = |name: &str| parse(&format!("type: GlobalSecret\nname: {name}\ndata: YQ==\n"));
        for name in [ZONE_TOKEN_PUBLIC_KEY, ZONE_TOKEN_REVOCATIONS] {
            assert!(syncs_global_to_zone(&secret(name)), "{name}");
        }
        for name in [
            "zone-token-signing-key-1",
            "user-token-signing-key-1",
            "user-token-revocations",
            "other",
        ] {
            assert!(!syncs_global_to_zone(&secret(name)), "{name}");
        }
        // Mesh secrets (CA, dataplane-token keys and revocations) all travel.
        let revocations = parse(
            "type: Secret\nname: dataplane-token-revocations-default\nmesh: default\ndata: YQ==\n",
        );
        assert!(syncs_global_to_zone(&revocations));
    }

    #[test]
    fn global_copies_of_dataplanes_carry_the_zone() {
        let dp = parse(
            "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 80, servicePort: 8080, tags: {kuma.io/service: web}}\n",
        );
        assert!(syncs_zone_to_global(&dp, "zone-1"));
        let copy = to_global_copy(&dp, "zone-1");
        assert_eq!(copy.name(), hashed_name("web-1", &["default", "zone-1"]));
        assert_eq!(copy.meta.labels[ZONE_LABEL], "zone-1");
        assert_eq!(copy.meta.labels[ORIGIN_LABEL], ORIGIN_ZONE);
        assert_eq!(copy.meta.labels[DISPLAY_NAME_LABEL], "web-1");
        assert!(!syncs_global_to_zone(&copy));
        let ingress = to_global_copy(
            &parse(
                "type: ZoneIngress\nname: ingress\nnetworking: {address: 10.0.0.2, port: 10001}\n",
            ),
            "zone-1",
        );
        assert!(syncs_global_to_zone(&ingress));
        let crate::Spec::ZoneIngress(spec) = &ingress.spec else {
            panic!()
        };
        assert_eq!(spec.zone, "zone-1");
        // A zone never sends back what it received, and keeps its own.
        let received = to_zone_copy(&ingress);
        assert!(is_copy_on_zone(&received, "zone-2"));
        assert!(!syncs_zone_to_global(&received, "zone-2"));
        assert!(!is_copy_on_zone(&ingress, "zone-1"));
        assert!(!is_copy_on_zone(&dp, "zone-1"));
        assert!(is_copy_on_zone(&to_zone_copy(&dp), "zone-1"));
    }

    #[test]
    fn server_names_are_valid_dns_names_and_distinct() {
        let cases = [
            ("default", "check-in-api"),
            ("default", "backend_kuma-demo_svc_8080"),
            ("default", "backend-kuma-demo-svc-8080"),
            ("m", "Upper.Case"),
            ("m", "upper.case"),
            ("m", "-dash"),
            ("m", "xn--punycode"),
            ("m", "___"),
            ("mesh_with.dots", "a"),
            ("default", &"payment-api_prod-namespace_svc_8080".repeat(4)),
        ];
        let mut seen = std::collections::HashSet::new();
        for (mesh, svc) in cases {
            let sni = service_sni(mesh, svc);
            assert!(rustls_like_dns_name(&sni), "{sni} must be a valid DNS name");
            assert!(seen.insert(sni.clone()), "{sni} collides");
            assert_eq!(sni, service_sni(mesh, svc), "stable");
        }
        assert_eq!(service_sni("default", "web"), "web.default.mesh");
        assert!(
            service_sni("default", "backend_kuma-demo_svc_8080")
                .starts_with("backend-kuma-demo-svc-8080-")
        );
    }

    fn rustls_like_dns_name(s: &str) -> bool {
        s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
    }
}
