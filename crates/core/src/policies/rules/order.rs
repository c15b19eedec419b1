//! Policy priority: which of two matched policies (or two entries) wins a merge.
//!
//! Kuma sorts matched policies from lowest to highest priority and merges their confs in that
//! order, so the last one wins each field. The comparators live in
//! `pkg/plugins/policies/core/matchers/dataplane.go` (`SortByTargetRef`, whole policies),
//! `pkg/plugins/policies/core/rules/sort/sort.go` (`CompareByPolicyAttributes`,
//! `CompareByDisplayName`), `rules/inbound/sort.go` (rule entries, then `matches`) and
//! `rules/outbound/sort.go` (to-entries). The ranks come from
//! `api/common/v1alpha1/targetref.go` and `api/mesh/v1alpha1/dataplane_helpers.go`.
//!
//! Unknown kinds, origins and roles rank 0 (below everything), as a missing Go map key does.

use std::cmp::{Ordering, Reverse};

use serde_json::Value;

use crate::spec::{Tags, TargetRef};

/// `kuma.io/origin`: `global` or `zone`.
pub const ORIGIN_LABEL: &str = "kuma.io/origin";
/// `kuma.io/policy-role`: `system`, `producer`, `consumer` or `workload-owner`.
pub const ROLE_LABEL: &str = "kuma.io/policy-role";
/// `kuma.io/display-name`: the name a synced resource had where it was created.
pub const DISPLAY_NAME_LABEL: &str = "kuma.io/display-name";
/// `kuma.io/zone`: the zone a resource was created in.
pub const ZONE_LABEL: &str = "kuma.io/zone";
/// `k8s.kuma.io/namespace`: the Kubernetes namespace a resource lives in.
pub const NAMESPACE_LABEL: &str = "k8s.kuma.io/namespace";
/// `kuma.io/effect: shadow` makes a policy visible to inspection only.
pub const EFFECT_LABEL: &str = "kuma.io/effect";

/// Rank of a targetRef kind: Mesh 1, Dataplane 2, MeshSubset 3, MeshGateway 4,
/// MeshService 5, MeshExternalService 6, MeshMultiZoneService 7, MeshServiceSubset 8,
/// MeshHTTPRoute 9; anything else (a missing kind included) 0.
pub fn kind_rank(kind: &str) -> u8 {
    match kind {
        "Mesh" => 1,
        "Dataplane" => 2,
        "MeshSubset" => 3,
        "MeshGateway" => 4,
        "MeshService" => 5,
        "MeshExternalService" => 6,
        "MeshMultiZoneService" => 7,
        "MeshServiceSubset" => 8,
        "MeshHTTPRoute" => 9,
        _ => 0,
    }
}

/// The kind of a top-level targetRef: a missing targetRef means `Mesh` (Kuma fills it in),
/// a targetRef without `kind` has the empty kind (which selects nothing).
pub fn top_level_kind(tr: Option<&TargetRef>) -> &str {
    match tr {
        None => "Mesh",
        Some(t) => t.kind.as_deref().unwrap_or(""),
    }
}

/// `global` 1 < unknown (no label) 2 < `zone` 3; any other value 0.
pub fn origin_rank(labels: &Tags) -> u8 {
    match labels.get(ORIGIN_LABEL).map(String::as_str).unwrap_or("") {
        "global" => 1,
        "" => 2,
        "zone" => 3,
        _ => 0,
    }
}

/// `system` (also when missing) 1 < `producer` 2 < `consumer` 3 < `workload-owner` 4;
/// any other value 0.
pub fn role_rank(labels: &Tags) -> u8 {
    match role(labels) {
        "system" => 1,
        "producer" => 2,
        "consumer" => 3,
        "workload-owner" => 4,
        _ => 0,
    }
}

/// The policy role, `system` when the label is missing or empty.
pub fn role(labels: &Tags) -> &str {
    match labels.get(ROLE_LABEL).map(String::as_str) {
        None | Some("") => "system",
        Some(r) => r,
    }
}

/// `kuma.io/display-name` when set and non-empty, else the resource name.
pub fn display_name<'a>(name: &'a str, labels: &'a Tags) -> &'a str {
    match labels.get(DISPLAY_NAME_LABEL).map(String::as_str) {
        Some(d) if !d.is_empty() => d,
        _ => name,
    }
}

/// Among `Dataplane` top-level refs: how specifically the ref names the proxy, then whether
/// it narrows to one inbound (`sectionName`). 0 for every other kind.
///
/// Kuma compares pairs (`TargetRef.CompareDataplaneKind`): a ref with a `name` beats one
/// with `labels`, then one with `sectionName` beats one without. That pairwise relation is
/// not a total order (`Dataplane {}` ties with both, `name`+`labels` loses to `name` alone),
/// so it is laid out as levels: `{}` 0 < `labels` 1 < `name`+`labels` 2 < `name` 3. Every
/// pair Kuma orders is ordered the same way; `Dataplane {}`, which Kuma leaves to the next
/// criteria, ranks lowest here (it is the least specific).
pub fn dataplane_rank(tr: Option<&TargetRef>) -> (u8, u8) {
    let Some(tr) = tr.filter(|t| t.kind.as_deref() == Some("Dataplane")) else {
        return (0, 0);
    };
    let has_name = tr.name.as_deref().is_some_and(|n| !n.is_empty());
    let has_labels = tr.labels.is_some();
    let level = match (has_name, has_labels) {
        (false, false) => 0,
        (false, true) => 1,
        (true, true) => 2,
        (true, false) => 3,
    };
    let section = u8::from(tr.section_name.as_deref().is_some_and(|s| !s.is_empty()));
    (level, section)
}

/// Everything that orders whole policies, compared field by field: top-level kind,
/// Dataplane specificity, origin, role, then the display name *inverted* (the
/// alphabetically first name has the highest priority), then the resource name (inverted
/// too) so that equal display names still sort deterministically.
///
/// `SortByTargetRef` also compares the number of `tags` of two `MeshGateway` refs between
/// origin and role; MeshGateway refs select nothing in this engine, so that step is left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyKey {
    pub attrs: Attrs,
    pub display_name: Reverse<String>,
    pub name: Reverse<String>,
}

/// `CompareByPolicyAttributes`: kind rank, Dataplane specificity, origin, role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attrs {
    pub kind: u8,
    pub dataplane: (u8, u8),
    pub origin: u8,
    pub role: u8,
}

impl PolicyKey {
    pub fn new(name: &str, labels: &Tags, target_ref: Option<&TargetRef>) -> PolicyKey {
        PolicyKey {
            attrs: Attrs {
                kind: kind_rank(top_level_kind(target_ref)),
                dataplane: dataplane_rank(target_ref),
                origin: origin_rank(labels),
                role: role_rank(labels),
            },
            display_name: Reverse(display_name(name, labels).to_owned()),
            name: Reverse(name.to_owned()),
        }
    }
}

/// `outbound.CompareByToEntry`: the to-entry's kind rank, then, for two `MeshService`
/// entries, one with a `sectionName` after one without.
pub fn to_entry_rank(tr: &TargetRef) -> (u8, u8) {
    let kind = tr.kind.as_deref();
    let section = u8::from(
        kind == Some("MeshService") && tr.section_name.as_deref().is_some_and(|s| !s.is_empty()),
    );
    (kind_rank(kind.unwrap_or("")), section)
}

/// `inbound.CompareMatch` as a sort key: a `spiffeID` match first (`Exact` before `Prefix`
/// before another type), then an `sni` match, then neither (catch-all). Smaller sorts first.
pub fn match_rank(m: Option<&Value>) -> (u8, u8) {
    let Some(m) = m else { return (3, 1) };
    let spiffe = match m.get("spiffeID").filter(|v| !v.is_null()) {
        None => 3,
        Some(s) => match s.get("type").and_then(Value::as_str) {
            Some("Exact") => 0,
            Some("Prefix") => 1,
            _ => 2,
        },
    };
    let sni = u8::from(m.get("sni").is_none_or(Value::is_null));
    (spiffe, sni)
}

/// Orders two inbound rules by their match only (a stable sort keeps policy order among
/// equal matches).
pub fn compare_matches(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match_rank(a).cmp(&match_rank(b))
}
