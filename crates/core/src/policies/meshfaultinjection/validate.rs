//! MeshFaultInjection checks: Kuma 2.14's `validator.go`, with its field paths and messages.
//!
//! Kuma's paths have a quirk kept here on purpose: the index of a fault set in `http[]` is
//! written after the fault's name (`spec.from[0].default.http.delay[1].value` is the delay of
//! `http[1]`).
//!
//! Unlike most policies, `from` and `to` depend on the top-level scope: `from` is refused
//! when the scope may include gateways (a missing `targetRef` or a plain `kind: Mesh` does),
//! `to` is refused when it cannot.

use std::cmp::Ordering;

use crate::ValidationError;
use crate::policies::common::{
    IntOrString, PolicyRole, includes_gateways, validate_gateway_scoped, validate_top_level_inbound,
};
use crate::validate::matches::validate_match;

use super::spec::{Conf, MeshFaultInjectionSpec};

/// Top-level kinds of a system policy (the only role on Universal, and any policy without
/// a `kuma.io/policy-role` label).
const SYSTEM_TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
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

/// Kinds allowed in `from[].targetRef`.
const FROM_KINDS: [&str; 4] = ["Mesh", "MeshSubset", "MeshServiceSubset", "MeshService"];

/// Kinds allowed in `to[].targetRef`.
const TO_KINDS: [&str; 1] = ["Mesh"];

const PERCENTAGE_RANGE: &str = "must be in inclusive range [0.0, 100.0]";

/// Validates a MeshFaultInjection as a system policy (what it is on Universal, and
/// whenever it has no `kuma.io/policy-role` label). Every field path starts with `spec`.
pub fn validate(spec: &MeshFaultInjectionSpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshFaultInjection with the given role ([`PolicyRole::from_labels`]): only
/// system policies may target a MeshGateway.
pub fn validate_with_role(spec: &MeshFaultInjectionSpec, role: &PolicyRole) -> ValidationError {
    let mut errs = ValidationError::new();
    let from = spec.from.as_deref().unwrap_or_default();
    let to = spec.to.as_deref().unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
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
    if !from.is_empty() && !rules.is_empty() {
        errs.add("", "field 'from' must be empty when 'rules' is defined");
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        for (j, m) in rule.matches.iter().flatten().enumerate() {
            errs.add_prefixed(&format!("{at}.matches[{j}]"), validate_match(m));
        }
        errs.add_prefixed(
            &format!("{at}.default"),
            validate_default(rule.default.as_ref()),
        );
    }
    let gateways = includes_gateways(spec.target_ref.as_ref());
    errs.add_prefixed(
        "",
        validate_gateway_scoped(
            gateways,
            from.iter()
                .map(|f| (f.target_ref.as_ref(), validate_default(f.default.as_ref())))
                .collect(),
            &FROM_KINDS,
            to.iter()
                .map(|t| (t.target_ref.as_ref(), validate_default(t.default.as_ref())))
                .collect(),
            &TO_KINDS,
        ),
    );
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`; paths are relative to it. Unset values are what Kuma's Go types hold
/// for them: status 0, percentage 0, delay 0, limit `""`.
fn validate_default(conf: Option<&Conf>) -> ValidationError {
    let mut errs = ValidationError::new();
    let faults = conf.and_then(|c| c.http.as_deref()).unwrap_or_default();
    for (i, fault) in faults.iter().enumerate() {
        if let Some(abort) = &fault.abort {
            let at = format!("http.abort[{i}]");
            let status = abort.http_status.unwrap_or(0);
            if !(100..600).contains(&status) {
                errs.add(
                    format!("{at}.httpStatus"),
                    "must be in inclusive range [100, 599]",
                );
            }
            percentage(
                &mut errs,
                &format!("{at}.percentage"),
                abort.percentage.as_ref(),
            );
        }
        if let Some(delay) = &fault.delay {
            let at = format!("http.delay[{i}]");
            if delay.value.as_ref().is_some_and(|d| d.is_negative()) {
                errs.add(format!("{at}.value"), "must not be negative when defined");
            }
            percentage(
                &mut errs,
                &format!("{at}.percentage"),
                delay.percentage.as_ref(),
            );
        }
        if let Some(bandwidth) = &fault.response_bandwidth {
            let at = format!("http.responseBandwidth[{i}]");
            match bandwidth.limit.as_deref().unwrap_or("") {
                "" => errs.add(format!("{at}.limit"), "must be defined"),
                limit if !is_bandwidth(limit) => {
                    errs.add(format!("{at}.limit"), "must be in kbps/Mbps/Gbps units")
                }
                _ => {}
            }
            percentage(
                &mut errs,
                &format!("{at}.percentage"),
                bandwidth.percentage.as_ref(),
            );
        }
    }
    errs
}

/// Kuma's `ValidatePercentage` with zero allowed; unset is 0.
fn percentage(errs: &mut ValidationError, field: &str, value: Option<&IntOrString>) {
    let Some(value) = value else {
        return;
    };
    match value.decimal() {
        None => errs.add(field, "string must be a valid number"),
        Some(d) if d.is_negative() || d.cmp_int(100) == Ordering::Greater => {
            errs.add(field, PERCENTAGE_RANGE)
        }
        Some(_) => {}
    }
}

/// Kuma's bandwidth syntax, `^(\d*)\s?([GMk]+bps)$`: optional digits, at most one white
/// space, then one or more of `G`, `M`, `k` and `bps`.
pub(crate) fn is_bandwidth(s: &str) -> bool {
    let Some(rest) = s.strip_suffix("bps") else {
        return false;
    };
    let number = rest.trim_end_matches(['G', 'M', 'k']);
    if number.len() == rest.len() {
        return false;
    }
    let digits = match number.as_bytes().last() {
        Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => &number[..number.len() - 1],
        _ => number,
    };
    digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_bandwidth;

    #[test]
    fn bandwidths_follow_kumas_pattern() {
        for ok in [
            "100Mbps", "1000Mbps", "10kbps", "1Gbps", "Mbps", "5 kbps", "5\tGbps", "1kMbps",
        ] {
            assert!(is_bandwidth(ok), "{ok:?}");
        }
        for bad in [
            "", "1000", "bps", "100mbps", "100Kbps", "100 bps", "5  kbps", " 5kbps", "1.5Mbps",
            "-1Mbps", "100Mbps ", "100Mbit",
        ] {
            assert!(!is_bandwidth(bad), "{bad:?}");
        }
    }
}
