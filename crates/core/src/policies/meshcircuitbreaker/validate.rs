//! MeshCircuitBreaker checks: Kuma 2.14's `validator.go`, with its field paths and messages.
//!
//! Kuma's paths have a quirk kept here on purpose: problems in `rules[i].default` are
//! reported under `from[i].default` (`spec.from[0].default.connectionLimits.maxRetries`).

use std::cmp::Ordering;

use crate::ValidationError;
use crate::policies::common::{GoDuration, IntOrString, RefOpts, validate_target_ref};
use crate::spec::TargetRef;

use super::spec::{Conf, ConnectionLimits, Detectors, MeshCircuitBreakerSpec, OutlierDetection};

/// Kinds allowed in the top-level `targetRef`.
const TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshGateway",
    "MeshServiceSubset",
    "Dataplane",
];

/// Kinds allowed in `from[].targetRef`.
const FROM_KINDS: [&str; 1] = ["Mesh"];

/// Kinds allowed in `to[].targetRef`.
const TO_KINDS: [&str; 4] = [
    "Mesh",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
];

const MUST_BE_GREATER_THAN_ZERO: &str = "must be greater than 0";
const UINT_PERCENTAGE: &str = "must be in inclusive range [0, 100]";

/// Validates a MeshCircuitBreaker; every field path starts with `spec`.
pub fn validate(spec: &MeshCircuitBreakerSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    let to = spec.to.as_deref().unwrap_or_default();
    let from = spec.from.as_deref().unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
    if let Some(target_ref) = &spec.target_ref {
        let opts = RefOpts {
            inbound_policy: !rules.is_empty() || !from.is_empty(),
            gateway_listener_tags_allowed: true,
            ..RefOpts::default()
        };
        errs.add_prefixed(
            "targetRef",
            validate_target_ref(target_ref, &TOP_LEVEL_KINDS, opts),
        );
    }
    if rules.is_empty() && to.is_empty() && from.is_empty() {
        errs.add(
            "",
            "at least one of 'from', 'to' or 'rules' has to be defined",
        );
    }
    if !rules.is_empty() && (!to.is_empty() || !from.is_empty()) {
        errs.add(
            "",
            "fields 'to' and 'from' must be empty when 'rules' is defined",
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        // Kuma reports rules under `from[i]`.
        errs.add_prefixed(
            &format!("from[{i}].default"),
            validate_conf(rule.default.as_ref()),
        );
    }
    for (i, item) in from.iter().enumerate() {
        let target_ref = item.target_ref.clone().unwrap_or_else(TargetRef::default);
        errs.add_prefixed(
            &format!("from[{i}].targetRef"),
            validate_target_ref(&target_ref, &FROM_KINDS, RefOpts::default()),
        );
        errs.add_prefixed(
            &format!("from[{i}].default"),
            validate_conf(item.default.as_ref()),
        );
    }
    for (i, item) in to.iter().enumerate() {
        let target_ref = item.target_ref.clone().unwrap_or_else(TargetRef::default);
        errs.add_prefixed(
            &format!("to[{i}].targetRef"),
            validate_target_ref(&target_ref, &TO_KINDS, RefOpts::default()),
        );
        errs.add_prefixed(
            &format!("to[{i}].default"),
            validate_conf(item.default.as_ref()),
        );
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`; paths are relative to it.
fn validate_conf(conf: Option<&Conf>) -> ValidationError {
    let mut errs = ValidationError::new();
    let (limits, outlier) = match conf {
        Some(c) => (c.connection_limits.as_ref(), c.outlier_detection.as_ref()),
        None => (None, None),
    };
    if limits.is_none() && outlier.is_none() {
        errs.add(
            "",
            "at least one of: 'connectionLimits' or 'outlierDetection' should be configured",
        );
        return errs;
    }
    if let Some(limits) = limits {
        errs.add_prefixed("connectionLimits", validate_connection_limits(limits));
    }
    if let Some(outlier) = outlier {
        errs.add_prefixed("outlierDetection", validate_outlier_detection(outlier));
    }
    errs
}

fn validate_connection_limits(limits: &ConnectionLimits) -> ValidationError {
    let mut errs = ValidationError::new();
    greater_than_zero(&mut errs, "maxConnections", limits.max_connections);
    greater_than_zero(&mut errs, "maxConnectionPools", limits.max_connection_pools);
    greater_than_zero(&mut errs, "maxPendingRequests", limits.max_pending_requests);
    greater_than_zero(&mut errs, "maxRetries", limits.max_retries);
    greater_than_zero(&mut errs, "maxRequests", limits.max_requests);
    errs
}

fn validate_outlier_detection(o: &OutlierDetection) -> ValidationError {
    let mut errs = ValidationError::new();
    positive_duration(&mut errs, "interval", o.interval.as_ref());
    positive_duration(&mut errs, "baseEjectionTime", o.base_ejection_time.as_ref());
    uint_percentage(&mut errs, "maxEjectionPercent", o.max_ejection_percent);
    if let Some(threshold) = &o.healthy_panic_threshold {
        percentage(&mut errs, "healthyPanicThreshold", threshold);
    }
    match &o.detectors {
        None => errs.add("detectors", "must be defined"),
        Some(d) => errs.add_prefixed("detectors", validate_detectors(d)),
    }
    errs
}

fn validate_detectors(d: &Detectors) -> ValidationError {
    let mut errs = ValidationError::new();
    if d.total_failures.is_none()
        && d.gateway_failures.is_none()
        && d.local_origin_failures.is_none()
        && d.success_rate.is_none()
        && d.failure_percentage.is_none()
    {
        errs.add(
            "",
            "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage",
        );
        return errs;
    }
    if let Some(t) = &d.total_failures {
        greater_than_zero(&mut errs, "totalFailures.consecutive", t.consecutive);
    }
    if let Some(g) = &d.gateway_failures {
        greater_than_zero(&mut errs, "gatewayFailures.consecutive", g.consecutive);
    }
    if let Some(l) = &d.local_origin_failures {
        greater_than_zero(&mut errs, "localOriginFailures.consecutive", l.consecutive);
    }
    if let Some(s) = &d.success_rate {
        greater_than_zero(&mut errs, "successRate.minimumHosts", s.minimum_hosts);
        greater_than_zero(&mut errs, "successRate.requestVolume", s.request_volume);
        if let Some(factor) = &s.standard_deviation_factor {
            let field = "successRate.standardDeviationFactor";
            match factor.decimal() {
                None => errs.add(field, "invalid number"),
                Some(d) if d.cmp_int(0) != Ordering::Greater => {
                    errs.add(field, MUST_BE_GREATER_THAN_ZERO)
                }
                Some(_) => {}
            }
        }
    }
    if let Some(f) = &d.failure_percentage {
        greater_than_zero(&mut errs, "failurePercentage.minimumHosts", f.minimum_hosts);
        greater_than_zero(
            &mut errs,
            "failurePercentage.requestVolume",
            f.request_volume,
        );
        uint_percentage(&mut errs, "failurePercentage.threshold", f.threshold);
    }
    errs
}

/// Kuma's `ValidateIntegerGreaterThanZeroOrNil`.
fn greater_than_zero(errs: &mut ValidationError, field: &str, value: Option<u32>) {
    if value == Some(0) {
        errs.add(field, MUST_BE_GREATER_THAN_ZERO);
    }
}

/// Kuma's `ValidateDurationGreaterThanZeroOrNil`.
fn positive_duration(errs: &mut ValidationError, field: &str, value: Option<&GoDuration>) {
    if value.is_some_and(|d| d.nanos() <= 0) {
        errs.add(field, "must be greater than zero when defined");
    }
}

/// Kuma's `ValidateUInt32PercentageOrNil`.
fn uint_percentage(errs: &mut ValidationError, field: &str, value: Option<u32>) {
    if value.is_some_and(|v| v > 100) {
        errs.add(field, UINT_PERCENTAGE);
    }
}

/// Kuma's `ValidatePercentageOrNil` (for a value that is given).
fn percentage(errs: &mut ValidationError, field: &str, value: &IntOrString) {
    match value.decimal() {
        None => errs.add(field, "string must be a valid number"),
        Some(d) if d.is_negative() || d.cmp_int(100) == Ordering::Greater => {
            errs.add(field, "must be in inclusive range [0.0, 100.0]")
        }
        Some(_) => {}
    }
}
