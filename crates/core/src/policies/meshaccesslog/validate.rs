//! MeshAccessLog checks: Kuma 2.14's `validator.go`, with its field paths and messages.

use crate::ValidationError;
use crate::policies::common::{
    PolicyRole, is_file_path, validate_otel_endpoint_or_ref, validate_top_level_inbound,
};
use crate::spec::TargetRef;
use crate::validate::matches::validate_match;
use crate::validate::targetref::validate as validate_target_ref;

use super::spec::{Backend, Conf, Format, MeshAccessLogSpec, OtelBackend};

/// Kinds of the top-level `targetRef` (every role: Kuma does not distinguish).
const TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Kinds allowed in `from[].targetRef`.
const FROM_KINDS: [&str; 1] = ["Mesh"];

/// Kinds allowed in `to[].targetRef` (only `Mesh` under a MeshGateway).
const TO_KINDS: [&str; 5] = [
    "Mesh",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
    "MeshHTTPRoute",
];

/// The backend types Kuma knows.
pub const BACKEND_TYPES: [&str; 3] = ["Tcp", "File", "OpenTelemetry"];

/// Kuma's OpenTelemetry attribute-name messages (`pkg/core/validators/messages.go`).
pub const OTEL_NAME_STATIC: &str =
    "must be a static OpenTelemetry attribute name; placeholders are only supported in values";
pub const OTEL_NAME_RESERVED: &str = "must not use the reserved OpenTelemetry prefix 'otel.'";
pub const OTEL_NAME_FORMAT: &str = "must start with a lowercase letter, use only lowercase letters, digits, '.' or '_', avoid consecutive delimiters, and end with a letter or digit";

/// Validates a MeshAccessLog. Every field path starts with `spec`.
pub fn validate(spec: &MeshAccessLogSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    let to = spec.to.as_deref().unwrap_or_default();
    let from = spec.from.as_deref().unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
    errs.add_prefixed(
        "",
        validate_top_level_inbound(
            spec.target_ref.as_ref(),
            &PolicyRole::System,
            &TOP_LEVEL_KINDS,
            &TOP_LEVEL_KINDS,
            !from.is_empty() || !rules.is_empty(),
        ),
    );
    if !rules.is_empty() && (!to.is_empty() || !from.is_empty()) {
        errs.add(
            "",
            "fields 'to' and 'from' must be empty when 'rules' is defined",
        );
    }
    if rules.is_empty() && to.is_empty() && from.is_empty() {
        errs.add(
            "",
            "at least one of 'from', 'to' or 'rules' has to be defined",
        );
    }
    let gateway = spec
        .target_ref
        .as_ref()
        .is_some_and(|t| t.kind.as_deref() == Some("MeshGateway"));
    let to_kinds: &[&str] = if gateway { &["Mesh"] } else { &TO_KINDS };
    let missing = TargetRef::default();
    for (i, t) in to.iter().enumerate() {
        errs.add_prefixed(
            &format!("to[{i}].targetRef"),
            validate_target_ref(t.target_ref.as_ref().unwrap_or(&missing), to_kinds, false),
        );
        errs.add_prefixed(
            &format!("to[{i}].default"),
            validate_default(t.default.as_ref()),
        );
    }
    for (i, f) in from.iter().enumerate() {
        errs.add_prefixed(
            &format!("from[{i}].targetRef"),
            validate_target_ref(
                f.target_ref.as_ref().unwrap_or(&missing),
                &FROM_KINDS,
                false,
            ),
        );
        errs.add_prefixed(
            &format!("from[{i}].default"),
            validate_default(f.default.as_ref()),
        );
    }
    for (i, r) in rules.iter().enumerate() {
        for (j, m) in r.matches.iter().flatten().enumerate() {
            errs.add_prefixed(&format!("rules[{i}].matches[{j}]"), validate_match(m));
        }
        errs.add_prefixed(
            &format!("rules[{i}].default"),
            validate_default(r.default.as_ref()),
        );
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`; paths are relative to it.
fn validate_default(conf: Option<&Conf>) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(backends) = conf.and_then(|c| c.backends.as_deref()) else {
        errs.add("backends", "must be defined");
        return errs;
    };
    for (i, b) in backends.iter().enumerate() {
        errs.add_prefixed(&format!("backends[{i}]"), validate_backend(b));
    }
    errs
}

fn validate_backend(b: &Backend) -> ValidationError {
    let mut errs = ValidationError::new();
    match b.backend_type.as_deref().unwrap_or("") {
        "File" => {
            let Some(file) = &b.file else {
                errs.add("file", "must be defined");
                return errs;
            };
            if let Some(f) = &file.format {
                errs.add_prefixed("file.format", validate_format(f));
            }
            if !is_file_path(file.path.as_deref().unwrap_or("")) {
                errs.add("file.path", "file backend requires a valid path");
            }
        }
        "Tcp" => {
            let Some(tcp) = &b.tcp else {
                errs.add("tcp", "must be defined");
                return errs;
            };
            if let Some(f) = &tcp.format {
                errs.add_prefixed("tcp.format", validate_format(f));
            }
            if !is_url(tcp.address.as_deref().unwrap_or("")) {
                errs.add("tcp.address", "tcp backend requires valid address");
            }
        }
        "OpenTelemetry" => {
            let Some(otel) = &b.open_telemetry else {
                errs.add("openTelemetry", "must be defined");
                return errs;
            };
            errs.add_prefixed("openTelemetry", validate_otel(otel));
        }
        // Kuma's schema refuses other values before its validator runs.
        _ => errs.add("type", crate::validate::one_of(&BACKEND_TYPES)),
    }
    errs
}

fn validate_otel(otel: &OtelBackend) -> ValidationError {
    let mut errs =
        validate_otel_endpoint_or_ref(otel.endpoint.as_deref(), otel.backend_ref.as_ref(), false);
    for (i, a) in otel.attributes.iter().flatten().enumerate() {
        if let Some(m) = otel_attribute_name_problem(&a.key) {
            errs.add(format!("attributes[{i}].key"), m);
        }
    }
    errs
}

/// Kuma's `ValidateOtelAttributeName`.
pub fn otel_attribute_name_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("must be defined");
    }
    if key.contains('%') {
        return Some(OTEL_NAME_STATIC);
    }
    if key.starts_with("otel.") {
        return Some(OTEL_NAME_RESERVED);
    }
    // ^[a-z](?:[a-z0-9]|[._][a-z0-9])*$
    let b = key.as_bytes();
    let ok = b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_'))
        && b.windows(2).all(|w| {
            !(matches!(w[0], b'.' | b'_') && !(w[1].is_ascii_lowercase() || w[1].is_ascii_digit()))
        })
        && !matches!(b[b.len() - 1], b'.' | b'_');
    (!ok).then_some(OTEL_NAME_FORMAT)
}

fn validate_format(f: &Format) -> ValidationError {
    let mut errs = ValidationError::new();
    match f.format_type.as_deref().unwrap_or("") {
        "Plain" => match f.plain.as_deref() {
            None => errs.add("plain", "must be defined"),
            Some("") => errs.add("plain", "must not be empty"),
            Some(_) => {}
        },
        "Json" => {
            let Some(fields) = &f.json else {
                errs.add("json", "must be defined");
                return errs;
            };
            if fields.is_empty() {
                errs.add("json", "must not be empty");
            }
            for (i, field) in fields.iter().enumerate() {
                if field.key.is_empty() {
                    errs.add(format!("json[{i}].key"), "key cannot be empty");
                }
                if field.value.is_empty() {
                    errs.add(format!("json[{i}].value"), "value cannot be empty");
                }
                // Kuma pastes key and value between quotes and asks whether that is JSON.
                let pasted = format!(r#"{{"{}": "{}"}}"#, field.key, field.value);
                if serde_json::from_str::<serde_json::Value>(&pasted).is_err() {
                    errs.add(format!("json[{i}]"), "is not a valid JSON object");
                }
            }
        }
        _ => errs.add("type", crate::validate::one_of(&["Plain", "Json"])),
    }
    errs
}

/// govalidator's `IsURL`, which Kuma applies to a TCP backend's address: a host name or
/// IP address, optionally with a scheme (`ftp`, `tcp`, `udp`, `ws(s)`, `http(s)`), user
/// information, a port of at most 5 digits and a path. Without a scheme and a port, the
/// host must contain a dot (`google.com`, not `localhost`).
pub fn is_url(s: &str) -> bool {
    if s.len() <= 3 || s.chars().count() >= 2083 || s.starts_with('.') {
        return false;
    }
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, s),
    };
    if let Some(scheme) = scheme
        && !["ftp", "tcp", "udp", "ws", "wss", "http", "https"]
            .contains(&scheme.to_ascii_lowercase().as_str())
    {
        return false;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if path.chars().any(char::is_whitespace) {
        return false;
    }
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, rest)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, rest.strip_prefix(':'))
            }
            None => return false,
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(hostport), None),
        },
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let Some(host) = host else { return true };
    if scheme.is_none() && port.is_none() && !host.contains('.') {
        return false;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && !host.starts_with(['.', '-', '_'])
        && !host.ends_with(['-', '_'])
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || c >= '\u{a1}')
}
