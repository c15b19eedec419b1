//! MeshLoadBalancingStrategy checks: Kuma 2.14's `validator.go`, with its field paths and
//! messages. Kuma checks no policy role for MeshLoadBalancingStrategy.
//!
//! Two of Kuma's messages are kept as they are on purpose: a `to` kind refused under a
//! MeshGateway because `loadBalancer` is set names the top-level kind (`value 'MeshGateway'
//! is not supported, only Mesh is allowed if loadBalancer is set`), and a MeshExternalService
//! destination gets both the unsupported-kind message and the Zone Egress explanation when
//! the top-level kind is not Mesh.

use std::cmp::Ordering;

use crate::ValidationError;
use crate::policies::common::{Decimal, RefOpts, validate_target_ref};
use crate::spec::TargetRef;

use super::spec::{
    Conf, CrossZone, HashPolicy, LoadBalancer, LocalZone, LocalityAwareness,
    MeshLoadBalancingStrategySpec,
};

/// Kinds allowed in the top-level `targetRef`.
const TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// `to[].targetRef` kinds under a MeshGateway when `loadBalancer` is set.
const GATEWAY_LB_TO_KINDS: [&str; 1] = ["Mesh"];
const GATEWAY_LB_TO_KINDS_ERROR: &str =
    "value 'MeshGateway' is not supported, only Mesh is allowed if loadBalancer is set";

/// `to[].targetRef` kinds under a MeshGateway otherwise.
const GATEWAY_TO_KINDS: [&str; 3] = ["Mesh", "MeshService", "MeshMultiZoneService"];

/// `to[].targetRef` kinds under any other top-level kind.
const TO_KINDS: [&str; 4] = [
    "Mesh",
    "MeshService",
    "MeshMultiZoneService",
    "MeshHTTPRoute",
];

const ONLY_HASH_POLICIES: &str =
    "field is not allowed when targetRef.kind is MeshHTTPRoute, only hashPolicies is supported";
const HASH_POLICIES_AT_ROOT: &str = "hashPolicies already specified in the root level";
const MUST_NOT_BE_EMPTY: &str = "must not be empty";
const MUST_BE_DEFINED: &str = "must be defined";

/// Validates a MeshLoadBalancingStrategy; every field path starts with `spec`.
pub fn validate(spec: &MeshLoadBalancingStrategySpec) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(target_ref) = &spec.target_ref {
        let opts = RefOpts {
            gateway_listener_tags_allowed: true,
            ..RefOpts::default()
        };
        errs.add_prefixed(
            "targetRef",
            validate_target_ref(target_ref, &TOP_LEVEL_KINDS, opts),
        );
    }
    let top_kind = spec
        .target_ref
        .as_ref()
        .map_or("Mesh", |r| r.kind.as_deref().unwrap_or(""));
    for (i, item) in spec.to.iter().flatten().enumerate() {
        let at = format!("to[{i}]");
        let target_ref = item.target_ref.clone().unwrap_or_else(TargetRef::default);
        let conf = item.default.clone().unwrap_or_default();
        let (kinds, kinds_error): (&[&str], _) = match top_kind {
            "MeshGateway" if conf.load_balancer.is_some() => {
                (&GATEWAY_LB_TO_KINDS, Some(GATEWAY_LB_TO_KINDS_ERROR))
            }
            "MeshGateway" => (&GATEWAY_TO_KINDS, None),
            _ => (&TO_KINDS, None),
        };
        let kind = target_ref.kind.as_deref().unwrap_or("");
        match kinds_error {
            Some(message) if !kind.is_empty() && !kinds.contains(&kind) => {
                errs.add(format!("{at}.targetRef.kind"), message);
            }
            _ => errs.add_prefixed(
                &format!("{at}.targetRef"),
                validate_target_ref(&target_ref, kinds, RefOpts::default()),
            ),
        }
        if kind == "MeshExternalService" && top_kind != "Mesh" {
            errs.add(
                format!("{at}.targetRef.kind"),
                "kind MeshExternalService is only allowed with targetRef.kind: Mesh as it is configured on the Zone Egress and shared by all clients in the mesh",
            );
        }
        errs.add_prefixed(&format!("{at}.default"), validate_conf(&conf, &target_ref));
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`; paths are relative to it.
fn validate_conf(conf: &Conf, to: &TargetRef) -> ValidationError {
    let mut errs = ValidationError::new();
    if to.kind.as_deref() == Some("MeshHTTPRoute") {
        errs.add_prefixed(
            "hashPolicies",
            validate_hash_policies(conf.hash_policies.as_deref()),
        );
        if conf.load_balancer.is_some() {
            errs.add("loadBalancer", ONLY_HASH_POLICIES);
        }
        if conf.locality_awareness.is_some() {
            errs.add("localityAwareness", ONLY_HASH_POLICIES);
        }
        return errs;
    }
    if let Some(lb) = &conf.load_balancer {
        errs.add_prefixed("loadBalancer", validate_load_balancer(lb));
    }
    if let Some(locality) = &conf.locality_awareness {
        errs.add_prefixed("localityAwareness", validate_locality(locality, to));
    }
    errs.add_prefixed(
        "hashPolicies",
        validate_hash_policies(conf.hash_policies.as_deref()),
    );
    if let (Some(_), Some(lb)) = (&conf.hash_policies, &conf.load_balancer) {
        if lb
            .ring_hash
            .as_ref()
            .is_some_and(|r| r.hash_policies.is_some())
        {
            errs.add("loadBalancer.ringHash.hashPolicies", HASH_POLICIES_AT_ROOT);
        }
        if lb
            .maglev
            .as_ref()
            .is_some_and(|m| m.hash_policies.is_some())
        {
            errs.add("loadBalancer.maglev.hashPolicies", HASH_POLICIES_AT_ROOT);
        }
    }
    errs
}

fn validate_locality(locality: &LocalityAwareness, to: &TargetRef) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(local) = &locality.local_zone {
        errs.add_prefixed("localZone", validate_local_zone(local));
    }
    if let Some(cross) = &locality.cross_zone {
        errs.add_prefixed("crossZone", validate_cross_zone(cross, to));
    }
    errs
}

fn validate_local_zone(local: &LocalZone) -> ValidationError {
    let mut errs = ValidationError::new();
    let tags = local.affinity_tags.as_deref().unwrap_or_default();
    let mut weighted = 0;
    for (i, tag) in tags.iter().enumerate() {
        if tag.key.as_deref().unwrap_or("").is_empty() {
            errs.add(format!("affinityTags[{i}].key"), MUST_NOT_BE_EMPTY);
        }
        if let Some(weight) = tag.weight {
            if weight == 0 {
                errs.add(
                    format!("affinityTags[{i}].weight"),
                    "must be greater than 0",
                );
            }
            weighted += 1;
        }
    }
    if weighted > 0 && weighted != tags.len() {
        errs.add(
            "affinityTags",
            "all or none affinity tags should have weight",
        );
    }
    errs
}

fn validate_cross_zone(cross: &CrossZone, to: &TargetRef) -> ValidationError {
    let mut errs = ValidationError::new();
    let narrowed = to.section_name.as_deref().is_some_and(|s| !s.is_empty())
        || to.labels.as_ref().is_some_and(|l| !l.is_empty());
    if to.kind.as_deref() == Some("MeshService") && narrowed {
        errs.add("", "must not be set: MeshService traffic is local");
    }
    for (i, failover) in cross.failover.iter().flatten().enumerate() {
        let at = format!("failover[{i}]");
        if let Some(from) = &failover.from {
            let zones = from.zones.as_deref().unwrap_or_default();
            if zones.is_empty() {
                errs.add(format!("{at}.from.zones"), MUST_NOT_BE_EMPTY);
            }
            for (j, zone) in zones.iter().enumerate() {
                if zone.is_empty() {
                    errs.add(format!("{at}.from.zones[{j}]"), MUST_NOT_BE_EMPTY);
                }
            }
        }
        let to_zone = failover.to.clone().unwrap_or_default();
        let zone_type = to_zone.zone_type.as_deref().unwrap_or("");
        let has_zones = to_zone.zones.as_ref().is_some_and(|z| !z.is_empty());
        match zone_type {
            "Any" | "None" if has_zones => errs.add(
                format!("{at}.to.zones"),
                format!("must be empty when type is {zone_type}"),
            ),
            "AnyExcept" | "Only" if !has_zones => errs.add(
                format!("{at}.to.zones"),
                format!("must not be empty when type is {zone_type}"),
            ),
            "Any" | "None" | "AnyExcept" | "Only" => {}
            _ => errs.add(format!("{at}.to.type"), "unrecognized type"),
        }
    }
    if let Some(threshold) = &cross.failover_threshold {
        let field = "failoverThreshold.percentage";
        // Kuma's `ValidatePercentage` without zero; unset is 0.
        let percentage = match &threshold.percentage {
            Some(p) => p.decimal(),
            None => Some(Decimal::from_int(0)),
        };
        match percentage {
            None => errs.add(field, "string must be a valid number"),
            Some(d) if d.is_negative() || d.cmp_int(100) == Ordering::Greater => {
                errs.add(field, "must be in inclusive range [0.0, 100.0]")
            }
            Some(d) if d.is_zero() => errs.add(field, "must be greater than 0"),
            Some(_) => {}
        }
    }
    errs
}

fn validate_load_balancer(lb: &LoadBalancer) -> ValidationError {
    let mut errs = ValidationError::new();
    match lb.lb_type.as_deref().unwrap_or("") {
        "RingHash" => {
            if let Some(ring) = &lb.ring_hash {
                errs.add_prefixed(
                    "ringHash.hashPolicies",
                    validate_hash_policies(ring.hash_policies.as_deref()),
                );
            }
        }
        "Maglev" => {
            if let Some(maglev) = &lb.maglev {
                errs.add_prefixed(
                    "maglev.hashPolicies",
                    validate_hash_policies(maglev.hash_policies.as_deref()),
                );
            }
        }
        "LeastRequest" => {
            if let Some(bias) = lb
                .least_request
                .as_ref()
                .and_then(|l| l.active_request_bias.as_ref())
            {
                match bias.decimal() {
                    None => errs.add(
                        "leastRequest.activeRequestBias",
                        "string must be a valid number",
                    ),
                    Some(d) if d.is_negative() => errs.add(
                        "leastRequest.activeRequestBias",
                        "must be greater or equal then: 0",
                    ),
                    Some(_) => {}
                }
            }
        }
        // RoundRobin and Random have nothing to check; other values are left to the schema,
        // as in Kuma's validator.
        _ => {}
    }
    errs
}

/// Each policy of a type that needs settings has them; paths start with `[i]`.
fn validate_hash_policies(policies: Option<&[HashPolicy]>) -> ValidationError {
    let mut errs = ValidationError::new();
    for (i, p) in policies.unwrap_or_default().iter().enumerate() {
        let missing = match p.policy_type.as_deref().unwrap_or("") {
            "Header" => p.header.is_none().then_some("header"),
            "Cookie" => match &p.cookie {
                None => Some("cookie"),
                Some(c) => {
                    if c.path.as_deref().is_some_and(|path| !path.starts_with('/')) {
                        errs.add(format!("[{i}].cookie.path"), "must be an absolute path");
                    }
                    None
                }
            },
            "QueryParameter" => p.query_parameter.is_none().then_some("queryParameter"),
            "FilterState" => p.filter_state.is_none().then_some("filterState"),
            "Connection" | "SourceIP" => p.connection.is_none().then_some("connection"),
            _ => None,
        };
        if let Some(field) = missing {
            errs.add(format!("[{i}].{field}"), MUST_BE_DEFINED);
        }
    }
    errs
}
