//! MeshHealthCheck checks: Kuma 2.14's `validator.go`, with its field paths and messages.
//! Kuma checks no policy role for MeshHealthCheck: every role may target a MeshGateway.

use std::cmp::Ordering;

use crate::ValidationError;
use crate::policies::common::{
    GoDuration, IntOrString, RefOpts, is_file_path, validate_target_ref,
};
use crate::spec::TargetRef;

use super::spec::{Conf, HttpHealthCheck, MeshHealthCheckSpec};

/// Kinds allowed in the top-level `targetRef`.
const TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Kinds allowed in `to[].targetRef`.
const TO_KINDS: [&str; 4] = [
    "Mesh",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
];

const GREATER_THAN_ZERO: &str = "must be greater than zero when defined";

/// Validates a MeshHealthCheck; every field path starts with `spec`.
pub fn validate(spec: &MeshHealthCheckSpec) -> ValidationError {
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
    for (i, item) in spec.to.iter().flatten().enumerate() {
        let target_ref = item.target_ref.clone().unwrap_or_else(TargetRef::default);
        errs.add_prefixed(
            &format!("to[{i}].targetRef"),
            validate_target_ref(&target_ref, &TO_KINDS, RefOpts::default()),
        );
        let conf = item.default.clone().unwrap_or_default();
        errs.add_prefixed(&format!("to[{i}].default"), validate_conf(&conf));
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`; paths are relative to it.
fn validate_conf(conf: &Conf) -> ValidationError {
    let mut errs = ValidationError::new();
    positive_duration(&mut errs, "interval", conf.interval.as_ref());
    positive_duration(&mut errs, "timeout", conf.timeout.as_ref());
    positive_value(&mut errs, "unhealthyThreshold", conf.unhealthy_threshold);
    positive_value(&mut errs, "healthyThreshold", conf.healthy_threshold);
    positive_duration(&mut errs, "initialJitter", conf.initial_jitter.as_ref());
    positive_duration(&mut errs, "intervalJitter", conf.interval_jitter.as_ref());
    if conf
        .interval_jitter_percent
        .is_some_and(|p| !(0..=100).contains(&p))
    {
        errs.add(
            "intervalJitterPercent",
            "must be in inclusive range [0, 100]",
        );
    }
    if let Some(threshold) = &conf.healthy_panic_threshold {
        percentage(&mut errs, "healthyPanicThreshold", threshold);
    }
    positive_duration(
        &mut errs,
        "noTrafficInterval",
        conf.no_traffic_interval.as_ref(),
    );
    if conf
        .event_log_path
        .as_deref()
        .is_some_and(|p| !is_file_path(p))
    {
        errs.add("eventLogPath", "must be a valid path when defined");
    }
    if let Some(http) = &conf.http {
        errs.add_prefixed("http", validate_http(http));
    }
    // Kuma checks nothing in `tcp` and `grpc`: all their fields are optional.
    if conf.http.is_none() && conf.tcp.is_none() && conf.grpc.is_none() {
        errs.add("", "must have at least one defined: http, tcp, grpc");
    }
    errs
}

fn validate_http(http: &HttpHealthCheck) -> ValidationError {
    let mut errs = ValidationError::new();
    if http.path.as_deref() == Some("") {
        errs.add("path", "must be defined");
    }
    for (i, status) in http.expected_statuses.iter().flatten().enumerate() {
        if !(100..600).contains(status) {
            errs.add(
                format!("expectedStatuses[{i}]"),
                "must be in inclusive range [100, 599]",
            );
        }
    }
    errs
}

/// Kuma's `ValidateDurationGreaterThanZeroOrNil`.
fn positive_duration(errs: &mut ValidationError, field: &str, value: Option<&GoDuration>) {
    if value.is_some_and(|d| d.nanos() <= 0) {
        errs.add(field, GREATER_THAN_ZERO);
    }
}

/// Kuma's `ValidateValueGreaterThanZeroOrNil`.
fn positive_value(errs: &mut ValidationError, field: &str, value: Option<i32>) {
    if value.is_some_and(|v| v <= 0) {
        errs.add(field, GREATER_THAN_ZERO);
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

#[cfg(test)]
mod tests {
    use crate::policies::common::is_file_path;

    #[test]
    fn file_paths_follow_govalidator() {
        for ok in [
            "/tmp/health-check.log",
            "/",
            "//x",
            "/a b/c#d",
            "/dir/",
            "C:\\logs\\hc.log",
            "c:\\",
            "C:\\logs\\",
        ] {
            assert!(is_file_path(ok), "{ok:?}");
        }
        for bad in [
            "#not_valid_path",
            "",
            "tmp/x.log",
            "./x.log",
            "/a\0b",
            "C:\\a\\\\b",
            "C:\\a:b",
            "C:/logs",
            "C:",
        ] {
            assert!(!is_file_path(bad), "{bad:?}");
        }
        // The Windows length limit.
        assert!(is_file_path(&format!("C:\\{}", "a".repeat(32767))));
        assert!(!is_file_path(&format!("C:\\{}", "a".repeat(32768))));
    }
}
