//! MeshTimeout checks, with Kuma's paths and messages (`meshtimeout/api/v1alpha1/validator.go`).

use crate::duration::GoDuration;
use crate::policies::common::PolicyRole;
use crate::spec::TargetRef;
use crate::validate::matches;
use crate::validate::targetref::{self, RefOpts};
use crate::{Meta, ValidationError};

use super::spec::{Conf, Http, MeshTimeoutSpec, Rule};

/// Top-level kinds for a policy of the `system` role (which a Universal policy has unless
/// its `kuma.io/policy-role` label says otherwise).
const TOP_LEVEL_SYSTEM: [&str; 7] = [
    "Mesh",
    "MeshSubset",
    "Dataplane",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "MeshHTTPRoute",
];
/// Top-level kinds for other roles.
const TOP_LEVEL_OTHER: [&str; 5] = [
    "Mesh",
    "Dataplane",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
];
const TO_KINDS: [&str; 5] = [
    "Mesh",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
    "MeshHTTPRoute",
];
/// `to` kinds when the top-level ref is a MeshHTTPRoute or a MeshGateway.
const TO_KINDS_ROUTE: [&str; 2] = ["Mesh", "MeshExternalService"];

const ROUTE_FORBIDS: &str =
    "can't be specified when top-level TargetRef is referencing MeshHTTPRoute";
const SOURCE_FORBIDS: &str = "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity";

pub(super) fn validate(spec: &MeshTimeoutSpec, meta: &Meta) -> ValidationError {
    let mut errs = ValidationError::new();
    let to = spec.to.as_deref().unwrap_or_default();
    let from = spec.from.as_deref().unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
    let inbound_policy = !from.is_empty() || !rules.is_empty();
    if let Some(target_ref) = &spec.target_ref {
        let system = PolicyRole::from_labels(&meta.labels) == PolicyRole::System;
        let kinds: &[&str] = if system {
            &TOP_LEVEL_SYSTEM
        } else {
            &TOP_LEVEL_OTHER
        };
        let opts = RefOpts {
            inbound_policy,
            gateway_listener_tags_allowed: system,
            ..RefOpts::default()
        };
        errs.add_prefixed(
            "targetRef",
            targetref::validate_with(target_ref, kinds, opts),
        );
    }
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
    let top_kind = spec
        .target_ref
        .as_ref()
        .and_then(|t| t.kind.as_deref())
        .unwrap_or("Mesh");
    let route_or_gateway = matches!(top_kind, "MeshHTTPRoute" | "MeshGateway");
    if route_or_gateway {
        if !from.is_empty() {
            errs.add("from", "must not be defined");
        }
    } else {
        for (i, item) in from.iter().enumerate() {
            let path = format!("from[{i}]");
            errs.add_prefixed(&path, target_ref_errors(&item.target_ref, &["Mesh"]));
            errs.add_prefixed(
                &format!("{path}.default"),
                validate_default(&item.default, top_kind),
            );
        }
    }
    let to_kinds: &[&str] = if route_or_gateway {
        &TO_KINDS_ROUTE
    } else {
        &TO_KINDS
    };
    for (i, item) in to.iter().enumerate() {
        let path = format!("to[{i}]");
        errs.add_prefixed(&path, target_ref_errors(&item.target_ref, to_kinds));
        errs.add_prefixed(
            &format!("{path}.default"),
            validate_default(&item.default, top_kind),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        errs.add_prefixed(&format!("rules[{i}]"), validate_rule(rule, top_kind));
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// A `to`/`from` reference, under `targetRef`.
fn target_ref_errors(r: &TargetRef, kinds: &[&str]) -> ValidationError {
    let mut errs = ValidationError::new();
    errs.add_prefixed("targetRef", targetref::validate(r, kinds, false));
    errs
}

fn validate_rule(rule: &Rule, top_kind: &str) -> ValidationError {
    let (mut errs, has_spiffe_id) =
        matches::validate_rule_matches(rule.matches.as_deref().unwrap_or_default());
    if has_spiffe_id {
        let c = &rule.default;
        let mut nil = |field: &str, v: &Option<GoDuration>| {
            if v.is_some() {
                errs.add(format!("default.{field}"), SOURCE_FORBIDS);
            }
        };
        nil("connectionTimeout", &c.connection_timeout);
        nil("idleTimeout", &c.idle_timeout);
        if let Some(h) = &c.http {
            nil("http.requestHeadersTimeout", &h.request_headers_timeout);
            nil("http.maxStreamDuration", &h.max_stream_duration);
            nil("http.maxConnectionDuration", &h.max_connection_duration);
        }
    }
    errs.add_prefixed("default", validate_default(&rule.default, top_kind));
    errs
}

/// One `default` conf; paths relative to it.
fn validate_default(c: &Conf, top_kind: &str) -> ValidationError {
    let mut errs = ValidationError::new();
    if c.connection_timeout.is_none() && c.idle_timeout.is_none() && c.http.is_none() {
        errs.add("", "at least one timeout should be configured");
        return errs;
    }
    if top_kind == "MeshHTTPRoute" {
        let mut nil = |field: &str, v: &Option<GoDuration>| {
            if v.is_some() {
                errs.add(field, ROUTE_FORBIDS);
            }
        };
        nil("connectionTimeout", &c.connection_timeout);
        nil("idleTimeout", &c.idle_timeout);
        if let Some(h) = &c.http {
            nil("http.maxStreamDuration", &h.max_stream_duration);
            nil("http.maxConnectionDuration", &h.max_connection_duration);
        }
    }
    if c.connection_timeout
        .as_ref()
        .is_some_and(|d| d.is_negative() || d.is_zero())
    {
        errs.add(
            "connectionTimeout",
            "must be greater than zero when defined",
        );
    }
    not_negative(&mut errs, "idleTimeout", &c.idle_timeout);
    if let Some(h) = &c.http {
        errs.add_prefixed("http", validate_http(h));
    }
    errs
}

fn validate_http(h: &Http) -> ValidationError {
    let mut errs = ValidationError::new();
    if h.request_timeout.is_none()
        && h.stream_idle_timeout.is_none()
        && h.max_stream_duration.is_none()
        && h.max_connection_duration.is_none()
    {
        errs.add(
            "",
            "at least one timeout in this section should be configured",
        );
    }
    not_negative(&mut errs, "requestTimeout", &h.request_timeout);
    not_negative(&mut errs, "streamIdleTimeout", &h.stream_idle_timeout);
    not_negative(&mut errs, "maxStreamDuration", &h.max_stream_duration);
    not_negative(
        &mut errs,
        "maxConnectionDuration",
        &h.max_connection_duration,
    );
    not_negative(
        &mut errs,
        "requestHeadersTimeout",
        &h.request_headers_timeout,
    );
    errs
}

fn not_negative(errs: &mut ValidationError, field: &str, d: &Option<GoDuration>) {
    if d.as_ref().is_some_and(GoDuration::is_negative) {
        errs.add(field, "must not be negative when defined");
    }
}
