//! MeshMetric checks: Kuma 2.14's `validator.go`, with its field paths and messages (note
//! Kuma's paths under lists: `default.applications.application[0]`,
//! `default.backends.backend[0].port`).

use crate::ValidationError;
use crate::policies::common::{PolicyRole, validate_otel_endpoint_or_ref, validate_top_level};

use super::spec::{Conf, MeshMetricSpec, Selector};

/// Top-level kinds of a system policy.
const SYSTEM_TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
    "MeshGateway",
    "Dataplane",
];

/// Top-level kinds of a policy with another role.
const TOP_LEVEL_KINDS: [&str; 5] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "Dataplane",
    "MeshServiceSubset",
];

const PORT: &str = "port must be a valid (1-65535)";

/// Validates a MeshMetric as a system policy. Every field path starts with `spec`.
pub fn validate(spec: &MeshMetricSpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshMetric with the given role.
pub fn validate_with_role(spec: &MeshMetricSpec, role: &PolicyRole) -> ValidationError {
    let mut errs = ValidationError::new();
    errs.add_prefixed(
        "",
        validate_top_level(
            spec.target_ref.as_ref(),
            role,
            &SYSTEM_TOP_LEVEL_KINDS,
            &TOP_LEVEL_KINDS,
        ),
    );
    if let Some(conf) = &spec.default {
        errs.add_prefixed("default", validate_default(conf));
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

fn validate_default(conf: &Conf) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(profiles) = conf.sidecar.as_ref().and_then(|s| s.profiles.as_ref()) {
        for (field, list) in [
            ("exclude", &profiles.exclude),
            ("include", &profiles.include),
        ] {
            for (i, s) in list.iter().flatten().enumerate() {
                selector(&mut errs, &format!("sidecar.profiles.{field}[{i}]"), s);
            }
        }
        for (i, p) in profiles.append_profiles.iter().flatten().enumerate() {
            if !["All", "None", "Basic"].contains(&p.name.as_str()) {
                errs.add(
                    format!("sidecar.profiles.appendProfiles[{i}].name"),
                    format!(
                        "unrecognized profile name '{}' - 'All', 'None', 'Basic' are supported",
                        p.name
                    ),
                );
            }
        }
    }
    for (i, a) in conf.applications.iter().flatten().enumerate() {
        if !port_ok(a.port) {
            errs.add(format!("applications.application[{i}]"), PORT);
        }
    }
    for (i, b) in conf.backends.iter().flatten().enumerate() {
        let at = format!("backends.backend[{i}]");
        match b.backend_type.as_deref().unwrap_or("") {
            "Prometheus" => match &b.prometheus {
                None => errs.add(format!("{at}.prometheus"), "must be defined"),
                // Kuma's schema defaults an unset port to 5670.
                Some(p) if p.port.is_some() && !port_ok(p.port) => {
                    errs.add(format!("{at}.port"), PORT)
                }
                Some(p) => {
                    if let Some(mode) = p.tls.as_ref().and_then(|t| t.mode.as_deref())
                        && !["Disabled", "ProvidedTLS", "ActiveMTLSBackend"].contains(&mode)
                    {
                        errs.add(
                            format!("{at}.prometheus.tls.mode"),
                            crate::validate::one_of(&[
                                "Disabled",
                                "ProvidedTLS",
                                "ActiveMTLSBackend",
                            ]),
                        );
                    }
                }
            },
            "OpenTelemetry" => match &b.open_telemetry {
                None => errs.add(format!("{at}.openTelemetry"), "must be defined"),
                Some(o) => errs.add_prefixed(
                    &format!("{at}.openTelemetry"),
                    validate_otel_endpoint_or_ref(
                        o.endpoint.as_deref(),
                        o.backend_ref.as_ref(),
                        true,
                    ),
                ),
            },
            _ => errs.add(at, "unrecognized type"),
        }
    }
    errs
}

fn port_ok(port: Option<u32>) -> bool {
    port.is_some_and(|p| (1..=65535).contains(&p))
}

fn selector(errs: &mut ValidationError, at: &str, s: &Selector) {
    match s.selector_type.as_str() {
        "Regex" => {
            if regex_syntax::Parser::new().parse(&s.match_value).is_err() {
                errs.add(format!("{at}.match"), "invalid regex");
            }
        }
        "Prefix" | "Exact" | "Contains" => {}
        other => errs.add(
            format!("{at}.type"),
            format!("unrecognized type '{other}' - 'Regex', 'Prefix', 'Exact' are supported"),
        ),
    }
}
