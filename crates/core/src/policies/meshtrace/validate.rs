//! MeshTrace checks: Kuma 2.14's `validator.go`, with its field paths and messages.

use std::cmp::Ordering;

use crate::ValidationError;
use crate::policies::common::{
    IntOrString, PolicyRole, RefOpts, validate_otel_endpoint_or_ref, validate_target_ref,
};
use crate::policies::meshaccesslog::is_url;

use super::spec::{Backend, Conf, MeshTraceSpec};

/// Top-level kinds of a system policy (MeshGateway listeners are not selectable by tags).
const SYSTEM_TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Top-level kinds of a policy with another role.
const TOP_LEVEL_KINDS: [&str; 5] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Validates a MeshTrace as a system policy. Every field path starts with `spec`.
pub fn validate(spec: &MeshTraceSpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshTrace with the given role.
pub fn validate_with_role(spec: &MeshTraceSpec, role: &PolicyRole) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(t) = &spec.target_ref {
        let kinds: &[&str] = match role {
            PolicyRole::System => &SYSTEM_TOP_LEVEL_KINDS,
            _ => &TOP_LEVEL_KINDS,
        };
        errs.add_prefixed(
            "targetRef",
            validate_target_ref(t, kinds, RefOpts::default()),
        );
    }
    let missing = Conf::default();
    errs.add_prefixed(
        "default",
        validate_default(spec.default.as_ref().unwrap_or(&missing)),
    );
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

fn validate_default(conf: &Conf) -> ValidationError {
    let mut errs = ValidationError::new();
    match conf.backends.as_deref() {
        None => errs.add("backends", "must be defined"),
        Some([]) => {}
        Some([backend]) => errs.add_prefixed("backends[0]", validate_backend(backend)),
        Some(_) => errs.add("backends", "must have zero or one backend defined"),
    }
    for (i, tag) in conf.tags.iter().flatten().enumerate() {
        if tag.name.is_empty() {
            errs.add(format!("tags[{i}].name"), "must not be empty");
        }
        if tag.header.is_some() == tag.literal.is_some() {
            errs.add(
                format!("tags[{i}]"),
                "tag must have only one type defined: header, literal",
            );
        }
    }
    if let Some(s) = &conf.sampling {
        for (field, v) in [
            ("client", &s.client),
            ("random", &s.random),
            ("overall", &s.overall),
        ] {
            if let Some(v) = v {
                sampling(&mut errs, &format!("sampling.{field}"), v);
            }
        }
    }
    errs
}

/// Kuma's check: a number (else "string is not a number", read as 0), 0 to 100.
fn sampling(errs: &mut ValidationError, field: &str, v: &IntOrString) {
    match v.decimal() {
        None => errs.add(field, "string is not a number"),
        Some(d) if d.is_negative() || d.cmp_int(100) == Ordering::Greater => {
            errs.add(field, "must be between 0 and 100")
        }
        Some(_) => {}
    }
}

fn validate_backend(b: &Backend) -> ValidationError {
    let mut errs = ValidationError::new();
    match b.backend_type.as_deref().unwrap_or("") {
        "Datadog" => match &b.datadog {
            None => errs.add("datadog", "must be defined"),
            Some(d) => {
                for problem in datadog_url_problems(d.url.as_deref().unwrap_or("")) {
                    errs.add("datadog.url", problem);
                }
            }
        },
        "Zipkin" => match &b.zipkin {
            None => errs.add("zipkin", "must be defined"),
            Some(z) => match z.url.as_deref().unwrap_or("") {
                "" => errs.add("zipkin.url", "must not be empty"),
                url if !is_url(url) => errs.add("zipkin.url", "must be a valid url"),
                _ => {}
            },
        },
        "OpenTelemetry" => match &b.open_telemetry {
            None => errs.add("openTelemetry", "must be defined"),
            Some(o) => errs.add_prefixed(
                "openTelemetry",
                validate_otel_endpoint_or_ref(o.endpoint.as_deref(), o.backend_ref.as_ref(), false),
            ),
        },
        // Kuma's schema refuses other values before its validator runs.
        _ => errs.add(
            "type",
            crate::validate::one_of(&["Zipkin", "Datadog", "OpenTelemetry"]),
        ),
    }
    errs
}

/// Kuma's Datadog URL rule (Go's `url.ParseRequestURI`): `http://host:port` and nothing
/// more.
pub fn datadog_url_problems(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec!["must be a valid url".into()];
    };
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        || url.chars().any(|c| c.is_ascii_control() || c == ' ')
    {
        return vec!["must be a valid url".into()];
    }
    let mut out = Vec::new();
    if scheme != "http" {
        out.push("scheme must be http".into());
    }
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let port = match hostport.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .map(|(_, p)| p.strip_prefix(':').unwrap_or("")),
        None => Some(hostport.rsplit_once(':').map_or("", |(_, p)| p)),
    };
    let Some(port) = port else {
        return vec!["must be a valid url".into()];
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return vec!["must be a valid url".into()];
    }
    if port.is_empty() {
        out.push("port must be defined".into());
    } else if port.parse::<u64>().map_or(true, |p| p == 0 || p > 65535) {
        out.push("port must be a valid (1-65535)".into());
    }
    let (path_query, fragment) = tail
        .split_once('#')
        .map_or((tail, None), |(a, f)| (a, Some(f)));
    let (path, query) = path_query
        .split_once('?')
        .map_or((path_query, None), |(p, q)| (p, Some(q)));
    if user.is_some() {
        out.push("user must not be defined".into());
    }
    if !path.is_empty() {
        out.push("path must not be defined".into());
    }
    if query.is_some_and(|q| !q.is_empty()) {
        out.push("query must not be defined".into());
    }
    if fragment.is_some_and(|f| !f.is_empty()) {
        out.push("fragment must not be defined".into());
    }
    out
}
