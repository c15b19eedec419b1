//! MeshHTTPRoute checks: Kuma 2.14's `validation.go`, with its field paths and messages.
//! Like Kuma, nothing checks the closed sets (match, filter and rewrite types) here: an
//! unknown filter type is ignored, as Kuma's Universal validator ignores it.

use std::collections::HashSet;

use crate::ValidationError;
use crate::policies::common::{
    BACKEND_REF_KINDS, BackendRef, HeaderMatch, PolicyRole, RefOpts, validate_target_ref,
    validate_top_level,
};
use crate::spec::TargetRef;
use crate::validate::matches::dns1123_subdomain_problems;

use super::spec::{
    Filter, HeaderModifier, Match, MeshHttpRouteSpec, PathMatch, PathRewrite, QueryParamsMatch,
    Rule, To,
};

/// Top-level kinds of a system policy (any policy without a `kuma.io/policy-role` label).
const SYSTEM_TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshGateway",
    "MeshSubset",
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

/// `to[].targetRef` kinds of a route on a MeshGateway.
const GATEWAY_TO_KINDS: [&str; 1] = ["Mesh"];

/// `to[].targetRef` kinds otherwise: real destinations.
const TO_KINDS: [&str; 3] = ["MeshService", "MeshExternalService", "MeshMultiZoneService"];

/// Kinds a `requestMirror.backendRef` may name.
const MIRROR_KINDS: [&str; 2] = ["MeshService", "MeshServiceSubset"];

/// The backend name a gateway route uses for a backend it could not resolve (Kuma's
/// `metadata.UnresolvedBackendServiceTag`): allowed although it breaks the name rules.
pub const UNRESOLVED_BACKEND: &str = "kuma.io/unresolved-backend";

const PREFIX_ONLY: &str = "can only appear if all matches match a path prefix";

/// Validates a MeshHTTPRoute as a system policy. Every field path starts with `spec`.
pub fn validate(spec: &MeshHttpRouteSpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshHTTPRoute with the given role: only system policies may target a
/// MeshGateway.
pub fn validate_with_role(spec: &MeshHttpRouteSpec, role: &PolicyRole) -> ValidationError {
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
    let on_gateway = spec
        .target_ref
        .as_ref()
        .is_some_and(|r| r.kind.as_deref() == Some("MeshGateway"));
    for (i, to) in spec.to.iter().flatten().enumerate() {
        errs.add_prefixed(&format!("to[{i}]"), validate_to(on_gateway, to));
    }
    let mut rooted = ValidationError::new();
    rooted.add_prefixed("spec", errs);
    rooted
}

fn validate_to(on_gateway: bool, to: &To) -> ValidationError {
    let mut errs = ValidationError::new();
    let kinds: &[&str] = if on_gateway {
        &GATEWAY_TO_KINDS
    } else {
        &TO_KINDS
    };
    let missing = TargetRef::default();
    errs.add_prefixed(
        "targetRef",
        validate_target_ref(
            to.target_ref.as_ref().unwrap_or(&missing),
            kinds,
            RefOpts::default(),
        ),
    );
    for (j, rule) in to.rules.iter().flatten().enumerate() {
        errs.add_prefixed(&format!("rules[{j}]"), validate_rule(on_gateway, rule));
    }
    if !on_gateway && to.hostnames.as_ref().is_some_and(|h| !h.is_empty()) {
        errs.add("hostnames", "must not be defined");
    }
    errs
}

fn validate_rule(on_gateway: bool, rule: &Rule) -> ValidationError {
    let mut errs = ValidationError::new();
    let matches = rule.matches.as_deref().unwrap_or_default();
    for (k, m) in matches.iter().enumerate() {
        errs.add_prefixed(&format!("matches[{k}]"), validate_match(m));
    }
    let default = rule.default.clone().unwrap_or_default();
    let filters = default.filters.as_deref().unwrap_or_default();
    for (k, f) in filters.iter().enumerate() {
        errs.add_prefixed(
            &format!("default.filters[{k}]"),
            validate_filter(on_gateway, f, matches),
        );
    }
    errs.add_prefixed(
        "default.backendRefs",
        validate_backend_refs(
            on_gateway,
            default.backend_refs.as_deref().unwrap_or_default(),
            filters,
        ),
    );
    errs
}

fn validate_match(m: &Match) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(path) = &m.path {
        errs.add_prefixed("path", validate_path(path));
    }
    errs.add_prefixed(
        "queryParams",
        validate_query_params(m.query_params.as_deref().unwrap_or_default()),
    );
    errs.add_prefixed(
        "headers",
        validate_headers(m.headers.as_deref().unwrap_or_default()),
    );
    errs
}

fn validate_path(path: &PathMatch) -> ValidationError {
    let mut errs = ValidationError::new();
    let value = path.value.as_deref().unwrap_or("");
    match path.match_type.as_deref() {
        Some("PathPrefix") if value != "/" => {
            if value.ends_with('/') {
                errs.add(
                    "value",
                    "does not need a trailing slash because only a `/`-separated prefix or an entire path is matched",
                );
            }
            if !value.starts_with('/') {
                errs.add("value", "must be an absolute path");
            }
        }
        Some("Exact") if !value.starts_with('/') => errs.add("value", "must be an absolute path"),
        _ => {}
    }
    errs
}

fn validate_query_params(params: &[QueryParamsMatch]) -> ValidationError {
    let mut errs = ValidationError::new();
    let mut seen = HashSet::new();
    for (i, p) in params.iter().enumerate() {
        let name = p.name.as_deref().unwrap_or("");
        if !seen.insert(name) {
            errs.add(
                format!("[{i}].name"),
                format!("multiple entries for name {name}"),
            );
        }
    }
    errs
}

fn validate_headers(headers: &[HeaderMatch]) -> ValidationError {
    let mut errs = ValidationError::new();
    for (i, h) in headers.iter().enumerate() {
        let valueless = matches!(h.match_type.as_deref(), Some("Present" | "Absent"));
        if valueless && h.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.add(format!("[{i}].value"), "must not be defined");
        }
    }
    errs
}

/// Whether some match is not a path prefix (no matches at all means "every path").
fn has_match_without_prefix(matches: &[Match]) -> bool {
    matches.iter().any(|m| {
        m.path
            .as_ref()
            .is_none_or(|p| p.match_type.as_deref() != Some("PathPrefix"))
    })
}

fn validate_filter(on_gateway: bool, f: &Filter, matches: &[Match]) -> ValidationError {
    let mut errs = ValidationError::new();
    match f.filter_type.as_deref() {
        Some("RequestHeaderModifier") => match &f.request_header_modifier {
            None => errs.add("requestHeaderModifier", "must be defined"),
            Some(m) => errs.add_prefixed("requestHeaderModifier", validate_header_modifier(m)),
        },
        Some("ResponseHeaderModifier") => match &f.response_header_modifier {
            None => errs.add("responseHeaderModifier", "must be defined"),
            Some(m) => errs.add_prefixed("responseHeaderModifier", validate_header_modifier(m)),
        },
        Some("RequestRedirect") => match &f.request_redirect {
            None => errs.add("requestRedirect", "must be defined"),
            Some(r) => errs.add_prefixed(
                "requestRedirect",
                validate_rewrite(r.path.as_ref(), r.hostname.as_deref(), matches),
            ),
        },
        Some("URLRewrite") => match &f.url_rewrite {
            None => errs.add("urlRewrite", "must be defined"),
            Some(r) => {
                errs.add_prefixed(
                    "urlRewrite",
                    validate_rewrite(r.path.as_ref(), r.hostname.as_deref(), matches),
                );
                if r.host_to_backend_hostname == Some(true) {
                    if !on_gateway {
                        errs.add(
                            "urlRewrite.hostToBackendHostname",
                            "can only be set with MeshGateway",
                        );
                    }
                    if r.hostname.is_some() {
                        errs.add(
                            "urlRewrite.hostToBackendHostname",
                            "cannot be set together with hostname",
                        );
                    }
                }
            }
        },
        Some("RequestMirror") => match &f.request_mirror {
            None => errs.add("requestMirror", "must be defined"),
            Some(m) => {
                let target = m
                    .backend_ref
                    .as_ref()
                    .map(BackendRef::target_ref)
                    .unwrap_or_default();
                errs.add_prefixed(
                    "requestMirror.backendRef",
                    validate_target_ref(&target, &MIRROR_KINDS, RefOpts::default()),
                );
            }
        },
        _ => {}
    }
    errs
}

/// What a redirect and a rewrite share: a prefix replacement needs prefix matches, and a
/// host name must be precise. Paths are relative to the filter's field.
fn validate_rewrite(
    path: Option<&PathRewrite>,
    hostname: Option<&str>,
    matches: &[Match],
) -> ValidationError {
    let mut errs = ValidationError::new();
    let prefix_rewrite = path.is_some_and(|p| p.replace_prefix_match.is_some());
    if prefix_rewrite && has_match_without_prefix(matches) {
        errs.add("path.replacePrefixMatch", PREFIX_ONLY);
    }
    errs.add_prefixed("hostname", validate_precise_hostname(hostname));
    errs
}

/// A host name that is not an IP address and is an RFC 1123 subdomain (Kuma's
/// `PreciseHostname`).
fn validate_precise_hostname(hostname: Option<&str>) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(hostname) = hostname else {
        return errs;
    };
    if is_ip_sloppy(hostname) {
        errs.add("", "cannot be an IP address");
        return errs;
    }
    for problem in dns1123_subdomain_problems(hostname) {
        errs.add("", problem);
    }
    errs
}

/// Whether `s` reads as an IP address the way Go's `ParseIPSloppy` reads it: IPv6, or IPv4
/// whose parts may carry leading zeros.
fn is_ip_sloppy(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok()
        })
}

fn validate_header_modifier(m: &HeaderModifier) -> ValidationError {
    let mut errs = ValidationError::new();
    if m.set.is_none() && m.add.is_none() && m.remove.is_none() {
        errs.add("", "must have at least one defined: set, add, remove");
        return errs;
    }
    // Every name, in Kuma's order: set, add, remove.
    let names = m
        .set
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, h)| (format!("set[{i}]"), h.name.as_deref().unwrap_or("")))
        .chain(
            m.add
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, h)| (format!("add[{i}]"), h.name.as_deref().unwrap_or(""))),
        )
        .chain(
            m.remove
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, name)| (format!("remove[{i}]"), name.as_str())),
        );
    let mut seen: HashSet<&str> = HashSet::new();
    for (at, name) in names {
        if !seen.insert(name) {
            errs.add(format!("{at}.name"), "duplicate header name");
        }
    }
    errs
}

fn validate_backend_refs(
    on_gateway: bool,
    refs: &[BackendRef],
    filters: &[Filter],
) -> ValidationError {
    let mut errs = ValidationError::new();
    // A gateway rule needs backends, unless it redirects.
    let redirects = filters
        .iter()
        .any(|f| f.filter_type.as_deref() == Some("RequestRedirect"));
    if refs.is_empty() && on_gateway && !redirects {
        errs.add("", "must not be empty");
    }
    let opts = RefOpts {
        allowed_invalid_names: &[UNRESOLVED_BACKEND],
        ..RefOpts::default()
    };
    for (i, r) in refs.iter().enumerate() {
        let at = format!("[{i}]");
        errs.add_prefixed(
            &at,
            validate_target_ref(&r.target_ref(), &BACKEND_REF_KINDS, opts),
        );
        if r.kind.as_deref() == Some("MeshMultiZoneService") && r.port.is_none() {
            errs.add(
                format!("{at}.port"),
                "must be defined with kind MeshMultiZoneService",
            );
        }
    }
    errs
}
