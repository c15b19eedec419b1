//! The Mesh's legacy observability sections and constraints, checked as Kuma's
//! `mesh_validator.go` checks them: `logging`, `tracing` and `metrics` backends and
//! `constraints.dataplaneProxy`. The sections are stored as written (Aerie does not act on
//! them); what is checked is what Kuma refuses, with its field paths (`config` for the logging
//! and tracing backends' `conf`, `conf` for the metrics backends', as Kuma names them).
//!
//! Unknown fields inside a backend's `conf` are ignored, as Kuma's conversion of the loosely
//! typed `conf` ignores them; a field of the wrong type is `could not parse config`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::targetref::{TagValues, validate_tags};
use crate::ValidationError;
use crate::spec::Tags;

/// Checks the four sections, in Kuma's order, with top-level paths (`logging.…`).
pub(super) fn validate(
    logging: Option<&Value>,
    tracing: Option<&Value>,
    metrics: Option<&Value>,
    constraints: Option<&Value>,
) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(v) = logging.filter(|v| !v.is_null()) {
        errs.add_prefixed("logging", section(v, validate_logging));
    }
    if let Some(v) = tracing.filter(|v| !v.is_null()) {
        errs.add_prefixed("tracing", section(v, validate_tracing));
    }
    if let Some(v) = metrics.filter(|v| !v.is_null()) {
        errs.add_prefixed("metrics", section(v, validate_metrics));
    }
    if let Some(v) = constraints.filter(|v| !v.is_null()) {
        errs.add_prefixed("constraints", section(v, validate_constraints));
    }
    errs
}

/// A section must be an object; its checks run on it.
fn section(v: &Value, check: fn(&Map<String, Value>) -> ValidationError) -> ValidationError {
    match v.as_object() {
        Some(m) => check(m),
        None => ValidationError::single("", "must be an object"),
    }
}

/// A string field as Go reads it: absent or null is `""`; another type is `Err`.
fn string<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{key}: expected a string, got {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The entries of a list field (absent or null: none); `Err` when it is not a list.
fn list<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!("expected a list, got {}", kind(other))),
    }
}

/// A backend's `conf` as an object (absent or null: empty, as Kuma's nil struct).
fn conf(backend: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    match backend.get("conf") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(format!("expected an object, got {}", kind(other))),
    }
}

/// A `backends` list whose `defaultBackend` must name one of them (logging, tracing): each
/// entry is an object passing `check`, names are unique.
fn validate_backends(
    section: &Map<String, Value>,
    check: fn(&Map<String, Value>) -> ValidationError,
    unknown_default: &str,
) -> ValidationError {
    let mut errs = ValidationError::new();
    let mut names = HashSet::new();
    match list(section, "backends") {
        Err(e) => errs.add("backends", e),
        Ok(entries) => {
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("backends[{i}]");
                let Some(backend) = entry.as_object() else {
                    errs.add(at, "must be an object");
                    continue;
                };
                errs.add_prefixed(&at, check(backend));
                let name = string(backend, "name").unwrap_or_default();
                if !names.insert(name) {
                    errs.add(
                        format!("{at}.name"),
                        format!("{name:?} name is already used for another backend"),
                    );
                }
            }
        }
    }
    check_named(
        &mut errs,
        section,
        "defaultBackend",
        &names,
        unknown_default,
    );
    errs
}

/// `key` (a default or enabled backend), when set, must be one of `names`.
fn check_named(
    errs: &mut ValidationError,
    section: &Map<String, Value>,
    key: &str,
    names: &HashSet<&str>,
    message: &str,
) {
    let chosen = string(section, key).unwrap_or_default();
    if !chosen.is_empty() && !names.contains(chosen) {
        errs.add(key, message);
    }
}

fn validate_logging(logging: &Map<String, Value>) -> ValidationError {
    validate_backends(
        logging,
        logging_backend,
        "has to be set to one of the logging backend in mesh",
    )
}

fn logging_backend(backend: &Map<String, Value>) -> ValidationError {
    let mut errs = ValidationError::new();
    named(&mut errs, backend);
    match string(backend, "type").unwrap_or("?") {
        "file" => errs.add_prefixed(
            "config",
            typed(backend, |c, errs| {
                if string(c, "path")?.is_empty() {
                    errs.add("path", "cannot be empty");
                }
                Ok(())
            }),
        ),
        "tcp" => errs.add_prefixed(
            "config",
            typed(backend, |c, errs| {
                let address = string(c, "address")?;
                if address.is_empty() {
                    errs.add("address", "cannot be empty");
                } else if split_host_port(address).is_none() {
                    errs.add("address", "has to be in format of HOST:PORT");
                }
                Ok(())
            }),
        ),
        _ => errs.add(
            "type",
            "unknown backend type. Available backends: \"tcp\", \"file\"",
        ),
    }
    errs
}

fn validate_tracing(tracing: &Map<String, Value>) -> ValidationError {
    validate_backends(
        tracing,
        tracing_backend,
        "has to be set to one of the tracing backend in mesh",
    )
}

fn tracing_backend(backend: &Map<String, Value>) -> ValidationError {
    let mut errs = ValidationError::new();
    named(&mut errs, backend);
    match backend.get("sampling") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            if !n.as_f64().is_some_and(|s| (0.0..=100.0).contains(&s)) {
                errs.add("sampling", "has to be in [0.0 - 100.0] range");
            }
        }
        Some(other) => errs.add(
            "sampling",
            format!("expected a number, got {}", kind(other)),
        ),
    }
    match string(backend, "type").unwrap_or("?") {
        "zipkin" => errs.add_prefixed("config", typed(backend, zipkin)),
        "datadog" => errs.add_prefixed(
            "config",
            typed(backend, |c, errs| {
                if string(c, "address")?.is_empty() {
                    errs.add("address", "cannot be empty");
                }
                let port = match c.get("port") {
                    None | Some(Value::Null) => 0,
                    Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                        format!("port: expected an unsigned 32-bit integer, got {n}")
                    })?,
                    Some(other) => {
                        return Err(format!("port: expected a number, got {}", kind(other)));
                    }
                };
                if port == 0 || port > 65535 {
                    errs.add("port", "port must be in the range [1, 65535]");
                }
                Ok(())
            }),
        ),
        _ => errs.add(
            "type",
            "unknown backend type. Available backends: \"zipkin\", \"datadog\"",
        ),
    }
    errs
}

fn zipkin(c: &Map<String, Value>, errs: &mut ValidationError) -> Result<(), String> {
    let api = string(c, "apiVersion")?;
    if !api.is_empty() && !["httpJsonV1", "httpJson", "httpProto"].contains(&api) {
        errs.add(
            "apiVersion",
            "has invalid value. Allowed values: httpJsonV1, httpJson, httpProto",
        );
    }
    let url = string(c, "url")?;
    if url.is_empty() {
        errs.add("url", "cannot be empty");
        return Ok(());
    }
    match request_uri_port(url) {
        None => errs.add("url", "invalid URL"),
        Some(false) => errs.add("url", "port has to be explicitly specified"),
        Some(true) => {}
    }
    Ok(())
}

fn validate_metrics(metrics: &Map<String, Value>) -> ValidationError {
    let mut errs = ValidationError::new();
    let entries = match list(metrics, "backends") {
        Ok(l) => l,
        Err(e) => {
            errs.add("backends", e);
            &[]
        }
    };
    let mut names = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("backends[{i}]");
        let Some(backend) = entry.as_object() else {
            errs.add(at, "must be an object");
            continue;
        };
        let name = string(backend, "name").unwrap_or_default();
        if names.contains(name) {
            errs.add(
                format!("{at}.name"),
                format!("{name:?} name is already used for another backend"),
            );
        }
        if string(backend, "type").unwrap_or("?") == "prometheus" {
            errs.add_prefixed(&format!("{at}.conf"), typed(backend, prometheus));
        } else {
            errs.add(
                format!("{at}.type"),
                "unknown backend type. Available backends: \"prometheus\"",
            );
        }
        names.insert(name);
    }
    check_named(
        &mut errs,
        metrics,
        "enabledBackend",
        &names,
        "has to be set to one of the backends in the mesh",
    );
    errs
}

/// Kuma's Prometheus backend config: `skipMTLS` and `tls` only together when they say the
/// same, a filter regex that compiles, unique aggregate names.
fn prometheus(c: &Map<String, Value>, errs: &mut ValidationError) -> Result<(), String> {
    let skip = match c.get("skipMTLS") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(format!("skipMTLS: expected a boolean, got {}", kind(other))),
    };
    let mode = match c.get("tls") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => Some(match string(t, "mode")? {
            "" | "activeMTLSBackend" => "activeMTLSBackend",
            "providedTLS" => "providedTLS",
            "disabled" => "disabled",
            other => return Err(format!("tls.mode: unknown value {other:?}")),
        }),
        Some(other) => return Err(format!("tls: expected an object, got {}", kind(other))),
    };
    if let (Some(skip), Some(mode)) = (skip, mode) {
        let same = (!skip && mode == "activeMTLSBackend") || (skip && mode == "disabled");
        if !same {
            errs.add(
                "",
                "skipMTLS and tls configuration cannot be defined together",
            );
            return Ok(());
        }
    }
    let regex = match c.get("envoy") {
        None | Some(Value::Null) => "",
        Some(Value::Object(e)) => string(e, "filterRegex")?,
        Some(other) => return Err(format!("envoy: expected an object, got {}", kind(other))),
    };
    if let Err(e) = regex_syntax::Parser::new().parse(regex) {
        errs.add(
            "envoy.filterRegex",
            format!(
                "provided regexp isn't correct: {}",
                first_line(&e.to_string())
            ),
        );
        return Ok(());
    }
    let aggregate = list(c, "aggregate").map_err(|e| format!("aggregate: {e}"))?;
    let mut used = HashSet::new();
    for (i, entry) in aggregate.iter().enumerate() {
        let name = match entry {
            Value::Object(a) => string(a, "name")?,
            other => {
                return Err(format!(
                    "aggregate[{i}]: expected an object, got {}",
                    kind(other)
                ));
            }
        };
        if !used.insert(name) {
            errs.add(
                format!("aggregate[{i}].name"),
                format!("duplicate entry: {name}, values have to be unique"),
            );
        }
    }
    Ok(())
}

fn validate_constraints(constraints: &Map<String, Value>) -> ValidationError {
    let mut errs = ValidationError::new();
    let proxy = match constraints.get("dataplaneProxy") {
        None | Some(Value::Null) => return errs,
        Some(Value::Object(p)) => p,
        Some(other) => {
            errs.add(
                "dataplaneProxy",
                format!("expected an object, got {}", kind(other)),
            );
            return errs;
        }
    };
    for key in ["requirements", "restrictions"] {
        let entries = match list(proxy, key) {
            Ok(l) => l,
            Err(e) => {
                errs.add(format!("dataplaneProxy.{key}"), e);
                continue;
            }
        };
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("dataplaneProxy.{key}[{i}].tags");
            let tags = match entry.get("tags") {
                None | Some(Value::Null) => Ok(Tags::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k.clone(), s.clone())),
                        Value::Null => Ok((k.clone(), String::new())),
                        Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                        other => Err(format!("expected a string, got {}", kind(other))),
                    })
                    .collect(),
                Some(other) => Err(format!("expected a map of tags, got {}", kind(other))),
            };
            match tags {
                Ok(tags) => {
                    if tags.is_empty() {
                        errs.add(at.as_str(), "must have at least one tag");
                    }
                    errs.add_prefixed(&at, validate_tags(&tags, TagValues::Selector));
                }
                Err(e) => errs.add(at, e),
            }
        }
    }
    errs
}

fn named(errs: &mut ValidationError, backend: &Map<String, Value>) {
    match string(backend, "name") {
        Ok("") => errs.add("name", "cannot be empty"),
        Ok(_) => {}
        Err(e) => errs.add("name", e),
    }
}

/// Runs `check` on the backend's `conf`; a conf of the wrong shape is Kuma's `could not parse
/// config` on the conf itself.
fn typed(
    backend: &Map<String, Value>,
    check: impl Fn(&Map<String, Value>, &mut ValidationError) -> Result<(), String>,
) -> ValidationError {
    let mut errs = ValidationError::new();
    let parsed = conf(backend).and_then(|c| check(&c, &mut errs));
    if let Err(e) = parsed {
        return ValidationError::single("", format!("could not parse config: {e}"));
    }
    errs
}

/// Go's `net.SplitHostPort` success with a non-empty host and port: `host:port` or
/// `[v6]:port`, one colon outside brackets.
fn split_host_port(address: &str) -> Option<(&str, &str)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        let (host, port) = address.rsplit_once(':')?;
        if host.contains(':') || host.contains('[') || host.contains(']') {
            return None;
        }
        (host, port)
    };
    if port.contains(['[', ']']) || host.is_empty() || port.is_empty() {
        return None;
    }
    Some((host, port))
}

/// Go's `url.ParseRequestURI` followed by `Port()`: `None` when the URL is not absolute (an
/// absolute path is accepted), else whether a port is given.
fn request_uri_port(url: &str) -> Option<bool> {
    if url.starts_with('/') {
        return Some(false);
    }
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        || url.contains(char::is_whitespace)
    {
        return None;
    }
    let Some(authority) = rest.strip_prefix("//") else {
        // Opaque (`mailto:x`): a request URI only when rooted; no host, no port.
        return rest.starts_with('/').then_some(false);
    };
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = if let Some(v6) = host_port.strip_prefix('[') {
        let (_, after) = v6.split_once(']')?;
        after.strip_prefix(':').unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or("", |(_, p)| p)
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(!port.is_empty())
}

fn first_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(s)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Vec<(String, String)> {
        let v: Value = serde_saphyr::from_str(yaml).unwrap();
        let errs = validate(
            v.get("logging"),
            v.get("tracing"),
            v.get("metrics"),
            v.get("constraints"),
        );
        errs.violations
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect()
    }

    fn one(yaml: &str, field: &str, message: &str) {
        assert_eq!(
            check(yaml),
            vec![(field.to_string(), message.to_string())],
            "{yaml}"
        );
    }

    #[test]
    fn kumas_accepted_mesh() {
        let yaml = r#"
logging:
  backends:
  - {name: file-1, type: file, conf: {path: /path/to/file}}
  - {name: file-2, format: '%START_TIME% %KUMA_SOURCE_SERVICE%', type: file, conf: {path: /path/to/file2}}
  - {name: tcp-1, type: tcp, conf: {address: "kibana:1234"}}
  - {name: tcp-2, type: tcp, conf: {address: "[::1]:1234"}}
  defaultBackend: tcp-1
tracing:
  backends:
  - name: zipkin-us
    sampling: 80.0
    type: zipkin
    conf: {url: "http://zipkin.local:9411/v2/spans", traceId128bit: true, apiVersion: httpProto, sharedSpanContext: true}
  - {name: zipkin-eu, type: zipkin, conf: {url: "http://zipkin.local:9411/v2/spans"}}
  - {name: dd, type: datadog, conf: {address: 127.0.0.1, port: 8126}}
  defaultBackend: zipkin-us
metrics:
  enabledBackend: prom-1
  backends:
  - name: prom-1
    type: prometheus
    conf:
      skipMTLS: false
      port: 5670
      path: /metrics
      envoy: {filterRegex: "^server[0-9]+", usedOnly: true}
      aggregate:
      - {name: application, port: 1234, path: /stats}
      - {name: sidecar, port: 12345, path: /stats/sidecar}
  - {name: prom-2, type: prometheus, conf: {tls: {mode: providedTLS}}}
  - {name: prom-3, type: prometheus, conf: {skipMTLS: true, tls: {mode: disabled}}}
constraints:
  dataplaneProxy:
    requirements:
    - tags: {k8s.kuma.io/namespace: ns-1, kuma.io/zone: east}
    restrictions:
    - tags: {k8s.kuma.io/namespace: ns-1, kuma.io/zone: "*"}
"#;
        assert_eq!(check(yaml), vec![]);
    }

    #[test]
    fn logging_backends() {
        one(
            "logging:\n  backends:\n  - name:\n    type: tcp\n    conf:\n      address: kibana:1234\n",
            "logging.backends[0].name",
            "cannot be empty",
        );
        one(
            "logging:\n  backends:\n  - {name: backend-1, type: tcp, conf: {address: 'kibana:1234'}}\n  - {name: backend-1, type: file, conf: {path: /p}}\n  defaultBackend: backend-1\n",
            "logging.backends[1].name",
            "\"backend-1\" name is already used for another backend",
        );
        one(
            "logging:\n  backends:\n  - name: backend-1\n    type: tcp\n    conf:\n      address:\n",
            "logging.backends[0].config.address",
            "cannot be empty",
        );
        one(
            "logging:\n  backends:\n  - {name: backend-1, type: tcp, conf: {address: 'wrong-format:234:234'}}\n",
            "logging.backends[0].config.address",
            "has to be in format of HOST:PORT",
        );
        one(
            "logging:\n  backends:\n  - name: backend-1\n    type: file\n    conf:\n      path:\n",
            "logging.backends[0].config.path",
            "cannot be empty",
        );
        one(
            "logging:\n  backends:\n  - {name: backend-1, type: file, conf: {path: /path}}\n  defaultBackend: non-existing-backend\n",
            "logging.defaultBackend",
            "has to be set to one of the logging backend in mesh",
        );
        one(
            "logging:\n  backends:\n  - {name: b, type: file, conf: {path: 7}}\n",
            "logging.backends[0].config",
            "could not parse config: path: expected a string, got a number",
        );
    }

    #[test]
    fn kumas_multiple_errors_case() {
        // Unknown fields in `conf` and in the backend are ignored, as Kuma ignores them.
        let got = check(
            "logging:\n  backends:\n  - name:\n    type: file\n    conf:\n      path: /path\n  - name: tcp-1\n    type: file\n    conf:\n      address: invalid-address\n  - name: tcp-1\n    type: tcp\n    path:\n      address:\n  defaultBackend: invalid-backend\n",
        );
        let want = [
            ("logging.backends[0].name", "cannot be empty"),
            ("logging.backends[1].config.path", "cannot be empty"),
            ("logging.backends[2].config.address", "cannot be empty"),
            (
                "logging.backends[2].name",
                "\"tcp-1\" name is already used for another backend",
            ),
            (
                "logging.defaultBackend",
                "has to be set to one of the logging backend in mesh",
            ),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn tracing_backends() {
        one(
            "tracing:\n  backends:\n  - name:\n    type: zipkin\n    conf:\n      url: http://zipkin.local:9411/v2/spans\n",
            "tracing.backends[0].name",
            "cannot be empty",
        );
        one(
            "tracing:\n  backends:\n  - {name: zipkin-us, type: zipkin, conf: {url: 'http://z:9411/v2/spans'}}\n  - {name: zipkin-us, type: zipkin, conf: {url: 'http://z:9411/v2/spans'}}\n",
            "tracing.backends[1].name",
            "\"zipkin-us\" name is already used for another backend",
        );
        one(
            "tracing:\n  backends:\n  - {name: zipkin-us, sampling: 100.1, type: zipkin, conf: {url: 'http://z:9411/v2/spans'}}\n",
            "tracing.backends[0].sampling",
            "has to be in [0.0 - 100.0] range",
        );
        one(
            "tracing:\n  backends:\n  - {name: z, type: zipkin, conf: {url: ''}}\n",
            "tracing.backends[0].config.url",
            "cannot be empty",
        );
        one(
            "tracing:\n  backends:\n  - {name: z, type: zipkin, conf: {url: invalid-url}}\n",
            "tracing.backends[0].config.url",
            "invalid URL",
        );
        one(
            "tracing:\n  backends:\n  - {name: z, type: zipkin, conf: {url: 'http://zipkin-us.local/v2/spans'}}\n",
            "tracing.backends[0].config.url",
            "port has to be explicitly specified",
        );
        one(
            "tracing:\n  backends:\n  - {name: z, type: zipkin, conf: {url: 'http://z:9411/v2/spans', apiVersion: invalid}}\n",
            "tracing.backends[0].config.apiVersion",
            "has invalid value. Allowed values: httpJsonV1, httpJson, httpProto",
        );
        one(
            "tracing:\n  defaultBackend: non-existent\n  backends:\n  - {name: z, type: zipkin, conf: {url: 'http://z:9411/v2/spans'}}\n",
            "tracing.defaultBackend",
            "has to be set to one of the tracing backend in mesh",
        );
        one(
            "tracing:\n  backends:\n  - {name: dd, type: datadog, conf: {address: '', port: 8126}}\n",
            "tracing.backends[0].config.address",
            "cannot be empty",
        );
        one(
            "tracing:\n  backends:\n  - {name: dd, type: datadog, conf: {address: dd.local, port: 70000}}\n",
            "tracing.backends[0].config.port",
            "port must be in the range [1, 65535]",
        );
    }

    #[test]
    fn metrics_backends() {
        one(
            "metrics:\n  enabledBackend: backend-1\n  backends:\n  - {name: backend-1, type: prometheus}\n  - {name: backend-1, type: prometheus}\n",
            "metrics.backends[1].name",
            "\"backend-1\" name is already used for another backend",
        );
        one(
            "metrics:\n  enabledBackend: backend-2\n  backends:\n  - {name: backend-1, type: prometheus}\n",
            "metrics.enabledBackend",
            "has to be set to one of the backends in the mesh",
        );
        for (skip, mode) in [
            ("true", "providedTLS"),
            ("false", "providedTLS"),
            ("false", "disabled"),
            ("true", "activeMTLSBackend"),
        ] {
            one(
                &format!(
                    "metrics:\n  backends:\n  - name: b\n    type: prometheus\n    conf:\n      skipMTLS: {skip}\n      tls:\n        mode: {mode}\n"
                ),
                "metrics.backends[0].conf",
                "skipMTLS and tls configuration cannot be defined together",
            );
        }
        let got = check(
            "metrics:\n  backends:\n  - name: backend-1\n    type: prometheus\n    conf:\n      aggregate:\n      - {name: app, path: /stats/, port: 123}\n      - {name: app, path: /stats}\n      - {name: sidecar, port: 12345}\n      - {name: sidecar}\n  - name: backend-2\n    type: prometheus\n    conf:\n      aggregate:\n      - {name: app, path: /stats/, port: 123}\n      - {name: app, path: /stats}\n",
        );
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metrics.backends[0].conf.aggregate[1].name",
                "metrics.backends[0].conf.aggregate[3].name",
                "metrics.backends[1].conf.aggregate[1].name"
            ]
        );
        assert_eq!(got[0].1, "duplicate entry: app, values have to be unique");
        let got = check(
            "metrics:\n  backends:\n  - {name: b, type: prometheus, conf: {envoy: {filterRegex: '(unclosed'}}}\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "metrics.backends[0].conf.envoy.filterRegex");
        assert!(
            got[0].1.starts_with("provided regexp isn't correct: "),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_backend_types() {
        let got = check(
            "metrics:\n  backends:\n  - {name: backend-1, type: xxx}\nlogging:\n  backends:\n  - {name: backend-1, type: xxx}\ntracing:\n  backends:\n  - {name: backend-1, type: xxx}\n",
        );
        let want = [
            (
                "logging.backends[0].type",
                "unknown backend type. Available backends: \"tcp\", \"file\"",
            ),
            (
                "tracing.backends[0].type",
                "unknown backend type. Available backends: \"zipkin\", \"datadog\"",
            ),
            (
                "metrics.backends[0].type",
                "unknown backend type. Available backends: \"prometheus\"",
            ),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn constraint_tags() {
        let got = check(
            "constraints:\n  dataplaneProxy:\n    requirements:\n    - {}\n    - tags:\n        '': ''\n    - tags:\n        '!@#$': '!@#$'\n    restrictions:\n    - {}\n    - tags:\n        '': ''\n    - tags:\n        '!@#$': '!@#$'\n",
        );
        let mut want = Vec::new();
        for key in ["requirements", "restrictions"] {
            let at = format!("constraints.dataplaneProxy.{key}");
            want.push((
                format!("{at}[0].tags"),
                "must have at least one tag".to_string(),
            ));
            want.push((
                format!("{at}[1].tags"),
                "tag name must be non-empty".to_string(),
            ));
            want.push((
                format!("{at}[1].tags[\"\"]"),
                "tag value must be non-empty".to_string(),
            ));
            want.push((
                format!("{at}[2].tags[\"!@#$\"]"),
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores".to_string(),
            ));
            want.push((
                format!("{at}[2].tags[\"!@#$\"]"),
                "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\"".to_string(),
            ));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn go_url_and_address_rules() {
        assert_eq!(request_uri_port("http://a:1/x"), Some(true));
        assert_eq!(request_uri_port("http://[::1]:9411/x"), Some(true));
        assert_eq!(request_uri_port("http://a/x"), Some(false));
        assert_eq!(request_uri_port("/v2/spans"), Some(false));
        assert_eq!(request_uri_port("invalid-url"), None);
        assert_eq!(request_uri_port("http://a:port/x"), None);
        assert_eq!(request_uri_port("1http://a:1"), None);
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:1"), Some(("::1", "1")));
        assert_eq!(split_host_port("a:1:2"), None);
        assert_eq!(split_host_port(":1"), None);
        assert_eq!(split_host_port("a:"), None);
        assert_eq!(split_host_port("a"), None);
    }
}
