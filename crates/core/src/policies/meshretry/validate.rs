//! MeshRetry checks: Kuma 2.14's `validator.go`, with its field paths and messages.
//!
//! Kuma's paths have a quirk kept here on purpose: the settings of `to[i].default` are
//! reported under `to[i].default.conf` (`spec.to[0].default.conf.http.backOff`).

use crate::ValidationError;
use crate::policies::common::{PolicyRole, RefOpts, validate_target_ref, validate_top_level};
use crate::spec::TargetRef;

use super::spec::{
    BackOff, Conf, GRPC_RETRY_ON, Grpc, HTTP_RETRY_ON, Http, MeshRetrySpec, Predicate,
    RateLimitedBackOff, Tcp,
};

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

/// `to[].targetRef` kinds when the policy targets a MeshGateway or a MeshHTTPRoute.
const GATEWAY_TO_KINDS: [&str; 2] = ["Mesh", "MeshExternalService"];

/// `to[].targetRef` kinds otherwise.
const TO_KINDS: [&str; 5] = [
    "Mesh",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
    "MeshHTTPRoute",
];

const MUST_NOT_BE_EMPTY: &str = "must not be empty";
const MUST_BE_DEFINED: &str = "must be defined";

/// Validates a MeshRetry as a system policy (what it is on Universal, and whenever it has
/// no `kuma.io/policy-role` label). Every field path starts with `spec`.
pub fn validate(spec: &MeshRetrySpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshRetry with the given role ([`PolicyRole::from_labels`]): only system
/// policies may target a MeshGateway or a MeshHTTPRoute.
pub fn validate_with_role(spec: &MeshRetrySpec, role: &PolicyRole) -> ValidationError {
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
    let top_kind = spec
        .target_ref
        .as_ref()
        .map_or("Mesh", |r| r.kind.as_deref().unwrap_or(""));
    let to_kinds: &[&str] = match top_kind {
        "MeshGateway" | "MeshHTTPRoute" => &GATEWAY_TO_KINDS,
        _ => &TO_KINDS,
    };
    for (i, item) in spec.to.iter().flatten().enumerate() {
        let at = format!("to[{i}]");
        let target_ref = item.target_ref.clone().unwrap_or_else(TargetRef::default);
        errs.add_prefixed(
            &format!("{at}.targetRef"),
            validate_target_ref(&target_ref, to_kinds, RefOpts::default()),
        );
        let conf = item.default.clone().unwrap_or_default();
        errs.add_prefixed(&format!("{at}.default"), validate_conf(&conf));
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `default`: paths start with `conf`, as Kuma's do.
fn validate_conf(conf: &Conf) -> ValidationError {
    let mut errs = ValidationError::new();
    if conf.tcp.is_none() && conf.http.is_none() && conf.grpc.is_none() {
        errs.add(
            "conf",
            "at least one of the 'tcp', 'http', 'grpc' must be specified",
        );
    }
    if let Some(tcp) = &conf.tcp {
        errs.add_prefixed("conf", validate_tcp(tcp));
    }
    if let Some(http) = &conf.http {
        errs.add_prefixed("conf", validate_http(http));
    }
    if let Some(grpc) = &conf.grpc {
        errs.add_prefixed("conf", validate_grpc(grpc));
    }
    errs
}

fn validate_tcp(tcp: &Tcp) -> ValidationError {
    let mut errs = ValidationError::new();
    match tcp.max_connect_attempt {
        None => errs.add("tcp", MUST_NOT_BE_EMPTY),
        Some(0) => errs.add("tcp.maxConnectAttempt", "must be greater than 0"),
        Some(_) => {}
    }
    errs
}

fn validate_http(http: &Http) -> ValidationError {
    let mut errs = ValidationError::new();
    // `hostSelectionMaxAttempts` alone does not count, as in Kuma.
    if http.num_retries.is_none()
        && http.per_try_timeout.is_none()
        && http.back_off.is_none()
        && http.retry_on.is_none()
        && http.retriable_request_headers.is_none()
        && http.retriable_response_headers.is_none()
        && http.rate_limited_back_off.is_none()
        && http.host_selection.is_none()
    {
        errs.add("http", MUST_NOT_BE_EMPTY);
    }
    if let Some(back_off) = &http.back_off {
        errs.add_prefixed("http", validate_back_off(back_off));
    }
    if let Some(rate_limited) = &http.rate_limited_back_off {
        errs.add_prefixed("http", validate_rate_limited_back_off(rate_limited));
    }
    if let Some(retry_on) = &http.retry_on {
        errs.add_prefixed("http", validate_http_retry_on(retry_on));
    }
    if let Some(predicates) = &http.host_selection {
        errs.add_prefixed("http", validate_host_selection(predicates));
    }
    errs
}

fn validate_grpc(grpc: &Grpc) -> ValidationError {
    let mut errs = ValidationError::new();
    if grpc.num_retries.is_none()
        && grpc.per_try_timeout.is_none()
        && grpc.back_off.is_none()
        && grpc.retry_on.is_none()
        && grpc.rate_limited_back_off.is_none()
    {
        errs.add("grpc", MUST_NOT_BE_EMPTY);
    }
    if let Some(back_off) = &grpc.back_off {
        errs.add_prefixed("grpc", validate_back_off(back_off));
    }
    if let Some(rate_limited) = &grpc.rate_limited_back_off {
        errs.add_prefixed("grpc", validate_rate_limited_back_off(rate_limited));
    }
    if let Some(retry_on) = &grpc.retry_on {
        for (i, item) in retry_on.iter().enumerate() {
            if !GRPC_RETRY_ON.iter().any(|(name, _)| name == item) {
                errs.add(format!("grpc.retryOn[{i}]"), unknown_item(item));
            }
        }
    }
    errs
}

fn validate_back_off(back_off: &BackOff) -> ValidationError {
    let mut errs = ValidationError::new();
    if back_off.base_interval.is_none() && back_off.max_interval.is_none() {
        errs.add("backOff", MUST_NOT_BE_EMPTY);
    }
    errs
}

fn validate_rate_limited_back_off(b: &RateLimitedBackOff) -> ValidationError {
    let mut errs = ValidationError::new();
    if b.max_interval.as_ref().is_some_and(|d| d.nanos() <= 0) {
        errs.add(
            "rateLimitedBackOff.maxInterval",
            "must be defined and greater than zero",
        );
    }
    match &b.reset_headers {
        None => errs.add("rateLimitedBackOff.resetHeaders", MUST_BE_DEFINED),
        Some(headers) => {
            for (i, header) in headers.iter().enumerate() {
                if header.name.as_deref().unwrap_or("").is_empty() {
                    errs.add(
                        format!("rateLimitedBackOff.resetHeaders[{i}].name"),
                        MUST_BE_DEFINED,
                    );
                }
            }
        }
    }
    errs
}

/// Each item is a named condition or an HTTP status code Go has a name for.
fn validate_http_retry_on(retry_on: &[String]) -> ValidationError {
    let mut errs = ValidationError::new();
    for (i, item) in retry_on.iter().enumerate() {
        let named = HTTP_RETRY_ON.iter().any(|(name, _)| name == item);
        if !named && !is_known_status_code(item) {
            errs.add(format!("retryOn[{i}]"), unknown_item(item));
        }
    }
    errs
}

fn validate_host_selection(predicates: &[Predicate]) -> ValidationError {
    let mut errs = ValidationError::new();
    let mut priorities_seen = false;
    for (i, p) in predicates.iter().enumerate() {
        let at = format!("hostSelection[{i}]");
        let kind = p.predicate.as_deref().unwrap_or("");
        match kind {
            "OmitHostsWithTags" => {
                if p.tags.is_none() {
                    errs.add(format!("{at}.tags"), MUST_BE_DEFINED);
                }
            }
            "OmitPreviousPriorities" => {
                if priorities_seen {
                    errs.add(
                        format!("{at}.predicate"),
                        format!("{kind} must only be specified once"),
                    );
                }
                if p.update_frequency_or_default() <= 0 {
                    errs.add(
                        format!("{at}.updateFrequency"),
                        "must be defined and greater than zero",
                    );
                }
                priorities_seen = true;
            }
            "OmitPreviousHosts" => {}
            other => errs.add(
                format!("{at}.predicate"),
                format!("unknown predicate type '{other}'"),
            ),
        }
    }
    errs
}

fn unknown_item(item: &str) -> String {
    format!("unknown item '{item}'")
}

/// Whether `s` reads as an integer (Go's `strconv.Atoi`: optional sign, decimal digits)
/// that Go's `http.StatusText` names.
fn is_known_status_code(s: &str) -> bool {
    s.parse::<i64>().is_ok_and(|code| {
        matches!(
            code,
            100..=103
                | 200..=208
                | 226
                | 300..=305
                | 307
                | 308
                | 400..=418
                | 421..=426
                | 428
                | 429
                | 431
                | 451
                | 500..=508
                | 510
                | 511
        )
    })
}

#[cfg(test)]
mod tests {
    use super::is_known_status_code;

    #[test]
    fn status_codes_are_the_ones_go_names() {
        for ok in [
            "100", "103", "200", "226", "304", "307", "409", "418", "421", "451", "500", "503",
            "511", "+503", "0503",
        ] {
            assert!(is_known_status_code(ok), "{ok}");
        }
        for bad in [
            "99",
            "104",
            "209",
            "306",
            "309",
            "419",
            "420",
            "427",
            "430",
            "432",
            "509",
            "512",
            "952",
            "123",
            "",
            "5xx",
            "5 03",
            "99999999999999999999",
        ] {
            assert!(!is_known_status_code(bad), "{bad}");
        }
    }
}
