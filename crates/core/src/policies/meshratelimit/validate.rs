//! MeshRateLimit checks: Kuma 2.14's `validator.go`, with its field paths and messages.
//!
//! As for MeshFaultInjection, `from` and `to` depend on the top-level scope: `from` (and
//! `rules`) are refused when the scope may include gateways (a missing `targetRef` or a
//! plain `kind: Mesh` does), `to` is refused when it cannot.

use crate::ValidationError;
use crate::policies::common::{
    PolicyRole, includes_gateways, validate_gateway_scoped, validate_top_level_inbound,
};
use crate::validate::matches::validate_rule_matches;

use super::spec::{Conf, LocalHttp, LocalTcp, MeshRateLimitSpec, Rate};

/// Top-level kinds of a system policy (the only role on Universal, and any policy without
/// a `kuma.io/policy-role` label).
const SYSTEM_TOP_LEVEL_KINDS: [&str; 7] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "MeshHTTPRoute",
    "Dataplane",
];

/// Top-level kinds of a policy with another role (Kubernetes, outside the system namespace).
const TOP_LEVEL_KINDS: [&str; 5] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Kinds allowed in `from[].targetRef` and `to[].targetRef`.
const FROM_TO_KINDS: [&str; 1] = ["Mesh"];

const MUST_NOT_BE_DEFINED: &str = "must not be defined";
const SOURCE_FORBIDS: &str = "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity";

/// Validates a MeshRateLimit as a system policy (what it is on Universal, and whenever it
/// has no `kuma.io/policy-role` label). Every field path starts with `spec`.
pub fn validate(spec: &MeshRateLimitSpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshRateLimit with the given role ([`PolicyRole::from_labels`]): only system
/// policies may target a MeshGateway or a MeshHTTPRoute.
pub fn validate_with_role(spec: &MeshRateLimitSpec, role: &PolicyRole) -> ValidationError {
    let mut errs = ValidationError::new();
    let from = spec.from.as_deref().unwrap_or_default();
    let to = spec.to.as_deref().unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
    if !rules.is_empty() && (!to.is_empty() || !from.is_empty()) {
        errs.add(
            "",
            "fields 'to' and 'from' must be empty when 'rules' is defined",
        );
    }
    errs.add_prefixed(
        "",
        validate_top_level_inbound(
            spec.target_ref.as_ref(),
            role,
            &SYSTEM_TOP_LEVEL_KINDS,
            &TOP_LEVEL_KINDS,
            !rules.is_empty() || !from.is_empty(),
        ),
    );
    // A MeshHTTPRoute scope includes gateways: Kuma's separate MeshHTTPRoute checks for
    // `rules` and `from` are never reached.
    let gateways = includes_gateways(spec.target_ref.as_ref());
    if gateways && !rules.is_empty() {
        errs.add("rules", MUST_NOT_BE_DEFINED);
    } else {
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            let (match_errs, has_spiffe_id) =
                validate_rule_matches(rule.matches.as_deref().unwrap_or_default());
            errs.add_prefixed(&at, match_errs);
            let conf = rule.default.as_ref();
            if has_spiffe_id
                && conf
                    .and_then(|c| c.local.as_ref())
                    .is_some_and(|l| l.tcp.is_some())
            {
                errs.add(format!("{at}.default.local.tcp"), SOURCE_FORBIDS);
            }
            errs.add_prefixed(&format!("{at}.default"), validate_default(conf));
        }
    }
    errs.add_prefixed(
        "",
        validate_gateway_scoped(
            gateways,
            from.iter()
                .map(|f| (f.target_ref.as_ref(), validate_default(f.default.as_ref())))
                .collect(),
            &FROM_TO_KINDS,
            to.iter()
                .map(|t| (t.target_ref.as_ref(), validate_default(t.default.as_ref())))
                .collect(),
            &FROM_TO_KINDS,
        ),
    );
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`; paths are relative to it.
fn validate_default(conf: Option<&Conf>) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(local) = conf.and_then(|c| c.local.as_ref()) else {
        errs.add("local", "must be defined");
        return errs;
    };
    if local.tcp.is_none() && local.http.is_none() {
        errs.add("local", "must have at least one defined: tcp, http");
    }
    if let Some(http) = &local.http {
        errs.add_prefixed("local.http", validate_http(http));
    }
    if let Some(tcp) = &local.tcp {
        errs.add_prefixed("local.tcp", validate_tcp(tcp));
    }
    errs
}

fn validate_http(http: &LocalHttp) -> ValidationError {
    let mut errs = ValidationError::new();
    if http.disabled.is_none() && http.request_rate.is_none() && http.on_rate_limit.is_none() {
        errs.add(
            "",
            "must have at least one defined: disabled, requestRate, onRateLimit",
        );
        return errs;
    }
    if let Some(rate) = &http.request_rate {
        errs.add_prefixed("requestRate", validate_rate(rate));
    }
    if http
        .on_rate_limit
        .as_ref()
        .is_some_and(|o| o.status == Some(0))
    {
        errs.add("onRateLimit.status", "must be greater than 0");
    }
    errs
}

fn validate_tcp(tcp: &LocalTcp) -> ValidationError {
    let mut errs = ValidationError::new();
    if tcp.disabled.is_none() && tcp.connection_rate.is_none() {
        errs.add(
            "",
            "must have at least one defined: disabled, connectionRate",
        );
        return errs;
    }
    if let Some(rate) = &tcp.connection_rate {
        errs.add_prefixed("connectionRate", validate_rate(rate));
    }
    errs
}

/// Above 0 per more than 50ms; unset values are 0, as in Kuma's Go types.
fn validate_rate(rate: &Rate) -> ValidationError {
    let mut errs = ValidationError::new();
    if rate.num.unwrap_or(0) == 0 {
        errs.add("num", "must be greater than 0");
    }
    if rate.interval.as_ref().map_or(0, |d| d.nanos()) <= MIN_INTERVAL_NANOS {
        errs.add("interval", "must be greater than: 50ms");
    }
    errs
}

/// 50ms.
const MIN_INTERVAL_NANOS: i64 = 50_000_000;
