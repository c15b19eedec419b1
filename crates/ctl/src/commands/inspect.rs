//! `kumactl inspect dataplanes`, `kumactl inspect dataplane NAME --type=policies|config`,
//! `kumactl inspect meshes`, `kumactl inspect zones` and `kumactl inspect zoneingresses`, read
//! from the control plane's insight endpoints (`/meshes/{mesh}/dataplanes+insights`,
//! `/meshes/{mesh}/dataplanes/{name}/_policies`, `/zones+insights`, `/zoneingresses+insights`).

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{parse_tag, segment};
use crate::cli::{
    InspectDataplaneArgs, InspectDataplanesArgs, InspectListArgs, InspectMeshesArgs, InspectionType,
};
use crate::client::Client;
use crate::output::table::{self, s};
use crate::output::{Format, yaml};
use crate::{Globals, Io};

/// The columns of `kumactl inspect dataplanes`: upstream's first ones, then what Aerie
/// knows for sure about each proxy (no Envoy or dependency versions, no update counters).
pub const DATAPLANE_HEADERS: [&str; 9] = [
    "MESH",
    "NAME",
    "TAGS",
    "STATUS",
    "LAST CONNECTED AGO",
    "CONFIG ACKED",
    "CERT EXPIRATION",
    "CERT REGENERATIONS",
    "KUMA-DP VERSION",
];

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    v.as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// The most recent subscription of an insight (`{subscriptions: [..]}`): the latest
/// `connectTime`, or the last one listed when no time parses.
fn latest_of(insight: Option<&Value>) -> Option<&Value> {
    let subs = insight
        .and_then(|i| i.get("subscriptions"))
        .and_then(Value::as_array)?;
    let mut best: Option<(&Value, Option<OffsetDateTime>)> = None;
    for sub in subs {
        let t = sub.get("connectTime").and_then(parse_time);
        best = match best {
            Some((_, Some(bt))) if t.is_none_or(|t| t < bt) => best,
            _ => Some((sub, t)),
        };
    }
    best.map(|(sub, _)| sub)
}

/// The most recent xDS subscription of a DataplaneOverview.
fn latest_subscription(overview: &Value) -> Option<&Value> {
    latest_of(overview.get("dataplaneInsight"))
}

/// Whether a subscription is still open (it has no `disconnectTime`).
fn is_open(sub: &Value) -> bool {
    sub.get("disconnectTime").is_none_or(Value::is_null)
}

/// `online` as the control plane reports it, or (when missing) whether the latest subscription
/// is still open.
fn is_online(overview: &Value) -> bool {
    match overview.get("online").and_then(Value::as_bool) {
        Some(online) => online,
        None => latest_subscription(overview).is_some_and(is_open),
    }
}

/// A scalar as a cell: strings as they are, numbers printed, anything else (or empty) `-`.
fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    }
}

/// One row of `kumactl inspect dataplanes` for a DataplaneOverview.
pub fn overview_row(overview: &Value, now: OffsetDateTime) -> Vec<String> {
    let sub = latest_subscription(overview);
    let last_connected = match sub.and_then(|s| s.get("connectTime")).and_then(parse_time) {
        Some(t) => table::human_duration((now - t).whole_seconds().max(0)),
        None => "never".into(),
    };
    let mtls = overview
        .get("dataplaneInsight")
        .and_then(|i| i.get("mTLS"))
        .filter(|m| m.is_object());
    let regenerations = match mtls {
        Some(m) => m
            .get("certificateRegenerations")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .to_string(),
        None => "-".into(),
    };
    vec![
        s(overview, &["mesh"]).to_string(),
        s(overview, &["name"]).to_string(),
        overview
            .get("dataplane")
            .map(table::tags_cell)
            .unwrap_or_default(),
        if is_online(overview) {
            "Online"
        } else {
            "Offline"
        }
        .to_string(),
        last_connected,
        cell(
            sub.and_then(|s| s.get("status"))
                .and_then(|s| s.get("configVersionAcknowledged")),
        ),
        cell(mtls.and_then(|m| m.get("certificateExpirationTime"))),
        regenerations,
        cell(
            sub.and_then(|s| s.get("version"))
                .and_then(|v| v.get("kumaDp"))
                .and_then(|k| k.get("version")),
        ),
    ]
}

/// Whether a DataplaneOverview has every `key=value` among its inbound (or gateway) tags.
pub fn matches_tags(overview: &Value, filter: &[(String, String)]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let tags = overview
        .get("dataplane")
        .map(table::tag_set)
        .unwrap_or_default();
    filter
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|vs| vs.contains(v)))
}

/// The `items` of a list answer.
fn items_of(body: &Value, what: &str) -> Result<Vec<Value>> {
    body.get("items")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| anyhow!("failed to list {what}: the answer has no `items` list"))
}

async fn list_overviews(client: &Client, mesh: &str) -> Result<Value> {
    let resp = client
        .get(&format!("/meshes/{}/dataplanes+insights", segment(mesh)))
        .await?;
    if !resp.is_success() {
        bail!(
            "failed to list Dataplanes in mesh \"{mesh}\": {}",
            resp.api_error()
        );
    }
    resp.json()
}

pub async fn dataplanes(args: InspectDataplanesArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let filter = args
        .tags
        .iter()
        .map(|t| parse_tag(t))
        .collect::<Result<Vec<_>>>()?;
    let client = g.client()?;
    let body = list_overviews(&client, &args.mesh).await?;
    let all = items_of(&body, "Dataplanes")?;
    let total = body
        .get("total")
        .and_then(Value::as_u64)
        .unwrap_or(all.len() as u64);
    let items: Vec<Value> = all
        .into_iter()
        .filter(|o| matches_tags(o, &filter))
        .collect();
    let total = if filter.is_empty() {
        total
    } else {
        items.len() as u64
    };
    let next = body.get("next").cloned().unwrap_or(Value::Null);
    let text = match args.output {
        Format::Table => {
            let now = OffsetDateTime::now_utc();
            let rows: Vec<Vec<String>> = items.iter().map(|o| overview_row(o, now)).collect();
            table::render(&DATAPLANE_HEADERS, &rows, None)
        }
        Format::Yaml => yaml::to_yaml(&yaml::list_value(&items, &next, total)),
        Format::Json => yaml::to_json(&yaml::list_value(&items, &next, total)),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// A `targetRef` as a short phrase: `Mesh`, `MeshService flight-control-blu`,
/// `MeshSubset version=v1`, `MeshService web namespace=kuma-demo sectionName=http`.
pub fn target_ref_text(tr: Option<&Value>) -> String {
    let Some(tr) = tr.filter(|t| t.is_object()) else {
        return "Mesh".into();
    };
    let kind = s(tr, &["kind"]);
    let mut parts = vec![if kind.is_empty() { "Mesh" } else { kind }.to_string()];
    for key in ["name", "namespace", "sectionName"] {
        let v = s(tr, &[key]);
        if v.is_empty() {
            continue;
        }
        parts.push(if key == "name" {
            v.to_string()
        } else {
            format!("{key}={v}")
        });
    }
    for key in ["labels", "tags"] {
        if let Some(Value::Object(m)) = tr.get(key) {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            kv.sort();
            if !kv.is_empty() {
                parts.push(kv.join(","));
            }
        }
    }
    parts.join(" ")
}

fn host_port(address: &str, port: u64) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// Inbound port → address, from a Dataplane (`networking.inbound[].address`, or the
/// dataplane's `networking.address`).
pub fn inbound_addresses(dataplane: &Value) -> HashMap<u64, String> {
    let networking = dataplane.get("networking");
    let default = networking
        .and_then(|n| n.get("address"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = HashMap::new();
    if let Some(Value::Array(inbounds)) = networking.and_then(|n| n.get("inbound")) {
        for i in inbounds {
            let Some(port) = i.get("port").and_then(Value::as_u64) else {
                continue;
            };
            let addr = i
                .get("address")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
                .unwrap_or(default);
            if !addr.is_empty() {
                out.entry(port).or_insert_with(|| addr.to_string());
            }
        }
    }
    out
}

/// The readable form of a `_policies` answer: per inbound, the MeshTrafficPermissions that
/// select it and their `from` entries.
pub fn render_policies(answer: &Value, addresses: &HashMap<u64, String>) -> String {
    let mesh = s(answer, &["mesh"]);
    let inbounds = answer
        .get("inbounds")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = String::new();
    if inbounds.is_empty() {
        let _ = writeln!(
            out,
            "Dataplane \"{}\" has no inbounds",
            s(answer, &["name"])
        );
        return out;
    }
    for (n, inbound) in inbounds.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let port = inbound.get("port").and_then(Value::as_u64).unwrap_or(0);
        let address = inbound
            .get("address")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .or_else(|| addresses.get(&port).map(String::as_str));
        let at = match address {
            Some(a) => host_port(a, port),
            None => format!(":{port}"),
        };
        let mut label = s(inbound, &["service"]);
        if label.is_empty() {
            label = s(inbound, &["name"]);
        }
        if label.is_empty() {
            let _ = writeln!(out, "inbound {at}:");
        } else {
            let _ = writeln!(out, "inbound {at} ({label}):");
        }
        let policies = inbound
            .get("policies")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mtls = inbound.get("mtls").and_then(Value::as_bool).unwrap_or(true);
        if !mtls {
            let _ = writeln!(out, "  mTLS is off in mesh {mesh}: all traffic is allowed");
            if !policies.is_empty() {
                let _ = writeln!(
                    out,
                    "  (the MeshTrafficPermissions below take effect once mTLS is enabled)"
                );
            }
        } else if policies.is_empty() {
            let _ = writeln!(
                out,
                "  no MeshTrafficPermission selects this inbound: all traffic is denied"
            );
        }
        if !policies.is_empty() {
            let _ = writeln!(out, "  MeshTrafficPermission");
        }
        for p in policies {
            let _ = writeln!(out, "    {}", s(p, &["name"]));
            let froms = p
                .get("from")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if froms.is_empty() {
                let _ = writeln!(out, "      (no from entries)");
            }
            for f in froms {
                let source = target_ref_text(f.get("targetRef"));
                let action = match f.get("action").and_then(Value::as_str) {
                    Some(a) if !a.is_empty() => a.to_string(),
                    _ => "no action (grants nothing)".into(),
                };
                let nobody = matches!(f.get("callers"), Some(Value::Array(c)) if c.is_empty());
                let suffix = if nobody { " (matches no caller)" } else { "" };
                let _ = writeln!(out, "      from {source}: {action}{suffix}");
            }
        }
        render_timeout(&mut out, inbound.get("meshTimeout"));
        render_fault_injection(&mut out, inbound.get("meshFaultInjection"));
        render_rate_limit(&mut out, inbound.get("meshRateLimit"));
    }
    let outbounds = answer
        .get("outbounds")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for outbound in outbounds {
        let port = outbound.get("port").and_then(Value::as_u64).unwrap_or(0);
        let at = host_port(s(outbound, &["address"]), port);
        let target = outbound.get("target");
        let to = match target.map(|t| s(t, &["type"])) {
            Some("service") => format!(
                "kuma.io/service={}",
                s(target.unwrap_or(&Value::Null), &["name"])
            ),
            Some("resource") => {
                let t = target.unwrap_or(&Value::Null);
                let section = s(t, &["section"]);
                let mut text = format!("{} {}", s(t, &["kind"]), s(t, &["name"]));
                if !section.is_empty() {
                    text.push_str(&format!(" sectionName={section}"));
                }
                text
            }
            _ => "unresolved".into(),
        };
        let _ = writeln!(out, "\noutbound {at} (to {to}):");
        render_timeout(&mut out, outbound.get("meshTimeout"));
        render_retry(&mut out, outbound.get("meshRetry"));
        render_circuit_breaker(&mut out, outbound.get("meshCircuitBreaker"));
    }
    out
}

/// Which callers an inbound entry applies to (the CP's `CallerMatch`).
fn callers_text(callers: Option<&Value>) -> String {
    let Some(c) = callers.filter(|c| c.as_object().is_some_and(|o| !o.is_empty())) else {
        return "every caller".into();
    };
    let mut parts = Vec::new();
    if let Some(v) = c.get("spiffeExact").and_then(Value::as_str) {
        parts.push(format!("spiffeID={v}"));
    }
    if let Some(v) = c.get("spiffePrefix").and_then(Value::as_str) {
        parts.push(format!("spiffeID={v}*"));
    }
    if let Some(v) = c.get("sni").and_then(Value::as_str) {
        parts.push(format!("sni={v}"));
    }
    for tag in c
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(k), Some(v)) = (
            tag.get(0).and_then(Value::as_str),
            tag.get(1).and_then(Value::as_str),
        ) {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(" ")
}

/// Parts per million as a percentage (`50%`, `12.5%`).
fn percent_text(v: Option<&Value>) -> String {
    let ppm = v.and_then(Value::as_u64).unwrap_or(0);
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let frac = format!("{frac:04}");
        format!("{whole}.{}%", frac.trim_end_matches('0'))
    }
}

/// The MeshFaultInjection part of one inbound, when a policy selects it.
fn render_fault_injection(out: &mut String, explained: Option<&Value>) {
    let named = explained
        .and_then(|e| e.get("policies"))
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    if !named {
        return;
    }
    let Some(effective) = render_contributors(out, "MeshFaultInjection", "", explained) else {
        let _ = writeln!(out, "    in force: no faults");
        return;
    };
    let how = match effective.get("combine").and_then(Value::as_str) {
        Some("first") => "the first entry matching the caller applies",
        _ => "every entry matching the caller applies",
    };
    let _ = writeln!(out, "    in force ({how}):");
    for e in effective
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let faults: Vec<String> = e
            .get("faults")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| {
                let mut parts = Vec::new();
                if let Some(d) = f.get("delay") {
                    parts.push(format!(
                        "delay {} ({})",
                        ms_text(d.get("ms")),
                        percent_text(d.get("perMillion"))
                    ));
                }
                if let Some(a) = f.get("abort") {
                    parts.push(format!(
                        "abort {} ({})",
                        a.get("status").and_then(Value::as_u64).unwrap_or(0),
                        percent_text(a.get("perMillion"))
                    ));
                }
                if let Some(b) = f.get("responseBandwidth") {
                    parts.push(format!(
                        "responseBandwidth {} B/s ({})",
                        b.get("bytesPerSecond").and_then(Value::as_u64).unwrap_or(0),
                        percent_text(b.get("perMillion"))
                    ));
                }
                if parts.is_empty() {
                    "nothing".into()
                } else {
                    parts.join(", ")
                }
            })
            .collect();
        let faults = if faults.is_empty() {
            "no faults".to_string()
        } else {
            faults.join("; ")
        };
        let _ = writeln!(out, "      {}: {faults}", callers_text(e.get("callers")));
    }
}

/// The MeshRateLimit part of one inbound, when a policy selects it.
fn render_rate_limit(out: &mut String, explained: Option<&Value>) {
    let named = explained
        .and_then(|e| e.get("policies"))
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    if !named {
        return;
    }
    let Some(effective) = render_contributors(out, "MeshRateLimit", "", explained) else {
        let _ = writeln!(out, "    in force: no limits");
        return;
    };
    let rate = |r: Option<&Value>| {
        let num = r
            .and_then(|r| r.get("num"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        format!("{num} per {}", ms_text(r.and_then(|r| r.get("intervalMs"))))
    };
    for route in effective
        .get("http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let limit = match route.get("limit") {
            Some(l) if l.is_object() => {
                let mut text = format!(
                    "{} requests, then {}",
                    rate(l.get("rate")),
                    l.get("status").and_then(Value::as_u64).unwrap_or(429)
                );
                for h in l
                    .get("headers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let verb = if h.get("append").and_then(Value::as_bool) == Some(true) {
                        "add"
                    } else {
                        "set"
                    };
                    text.push_str(&format!(
                        " {verb} {}: {}",
                        s(h, &["name"]),
                        s(h, &["value"])
                    ));
                }
                text
            }
            _ => "not limited".into(),
        };
        let _ = writeln!(
            out,
            "    in force: http {}: {limit}",
            callers_text(route.get("callers"))
        );
    }
    if let Some(tcp) = effective.get("tcp").filter(|t| t.is_object()) {
        let _ = writeln!(out, "    in force: tcp: {} connections", rate(Some(tcp)));
    }
}

/// The contributing policies of one policy kind (lowest priority first), or `none` when no
/// policy applies; returns the `effective` object, if any.
fn render_contributors<'a>(
    out: &mut String,
    kind: &str,
    none: &str,
    explained: Option<&'a Value>,
) -> Option<&'a Value> {
    let explained = explained.filter(|e| e.is_object())?;
    let names: Vec<&str> = explained
        .get("policies")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "  {kind}");
    if names.is_empty() {
        let _ = writeln!(out, "    ({none})");
    }
    for name in names {
        let _ = writeln!(out, "    {name}");
    }
    explained.get("effective").filter(|e| e.is_object())
}

/// Milliseconds as a Go duration (`0`: `none`).
fn ms_text(v: Option<&Value>) -> String {
    let ms = v.and_then(Value::as_u64).unwrap_or(0);
    if ms == 0 {
        return "none".into();
    }
    aerie_core::duration::format_go_duration(
        i64::try_from(ms)
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000),
    )
}

/// The MeshRetry part of one outbound: contributing policies and the retries in force.
fn render_retry(out: &mut String, explained: Option<&Value>) {
    let Some(effective) = render_contributors(
        out,
        "MeshRetry",
        "no MeshRetry applies: nothing is retried",
        explained,
    ) else {
        return;
    };
    let policy = |key: &str| match effective.get(key).filter(|p| p.is_object()) {
        None => "no retries".to_string(),
        Some(p) => {
            let list = |k: &str| {
                p.get(k)
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .map(|x| match x {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            };
            let mut retry_on = list("retryOn");
            let codes = list("statusCodes");
            if !codes.is_empty() {
                retry_on = format!("{retry_on},{codes}");
            }
            let mut text = format!(
                "numRetries={} perTryTimeout={} backOff={}..{} retryOn={retry_on}",
                p.get("numRetries").and_then(Value::as_u64).unwrap_or(0),
                ms_text(p.get("perTryTimeoutMs")),
                ms_text(p.get("baseIntervalMs")),
                ms_text(p.get("maxIntervalMs")),
            );
            let methods = list("methods");
            if !methods.is_empty() {
                text.push_str(&format!(" methods={methods}"));
            }
            if let Some(rl) = p.get("rateLimited").filter(|r| r.is_object()) {
                let headers: Vec<String> = rl
                    .get("resetHeaders")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|h| {
                        format!(
                            "{}:{}",
                            h.get("name").and_then(Value::as_str).unwrap_or_default(),
                            h.get("format").and_then(Value::as_str).unwrap_or_default()
                        )
                    })
                    .collect();
                text.push_str(&format!(
                    " rateLimitedBackOff={}..{}",
                    headers.join(","),
                    ms_text(rl.get("maxIntervalMs"))
                ));
            }
            let names = |k: &str| -> Vec<String> {
                p.get(k)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            };
            let response_headers = names("responseHeaders");
            if !response_headers.is_empty() {
                text.push_str(&format!(
                    " retriableResponseHeaders={}",
                    response_headers.join(",")
                ));
            }
            text
        }
    };
    let _ = writeln!(
        out,
        "    in force: http: {}; grpc: {}; tcp: maxConnectAttempt={}",
        policy("http"),
        policy("grpc"),
        effective
            .get("tcpMaxConnectAttempt")
            .and_then(Value::as_u64)
            .unwrap_or(1),
    );
}

/// The MeshCircuitBreaker part of one outbound: contributing policies, the connection
/// limits and the outlier detection in force.
fn render_circuit_breaker(out: &mut String, explained: Option<&Value>) {
    let Some(effective) = render_contributors(
        out,
        "MeshCircuitBreaker",
        "no MeshCircuitBreaker applies: Envoy's defaults",
        explained,
    ) else {
        return;
    };
    let n = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_string(), |n| n.to_string())
    };
    let outlier = match effective.get("outlier").filter(|o| o.is_object()) {
        None => "off".to_string(),
        Some(o) => {
            let mut text = format!(
                "baseEjectionTime={} maxEjectionPercent={} totalFailures={} gatewayFailures={} localOriginFailures={}",
                ms_text(o.get("baseEjectionMs")),
                n(o, "maxEjectionPercent"),
                n(o, "consecutive5xx"),
                n(o, "consecutiveGateway"),
                n(o, "consecutiveLocalOrigin"),
            );
            if let Some(sr) = o.get("successRate").filter(|v| v.is_object()) {
                let factor = sr.get("stdevFactor").and_then(Value::as_u64).unwrap_or(0);
                text.push_str(&format!(
                    " successRate=minimumHosts:{},requestVolume:{},standardDeviationFactor:{}",
                    n(sr, "minimumHosts"),
                    n(sr, "requestVolume"),
                    factor as f64 / 1000.0
                ));
            }
            if let Some(fp) = o.get("failurePercentage").filter(|v| v.is_object()) {
                text.push_str(&format!(
                    " failurePercentage=minimumHosts:{},requestVolume:{},threshold:{}",
                    n(fp, "minimumHosts"),
                    n(fp, "requestVolume"),
                    n(fp, "threshold")
                ));
            }
            if o.get("successRate").is_some() || o.get("failurePercentage").is_some() {
                text.push_str(&format!(" interval={}", ms_text(o.get("intervalMs"))));
            }
            if o.get("splitExternalAndLocalErrors") == Some(&Value::Bool(true)) {
                text.push_str(" splitExternalAndLocalErrors");
            }
            text
        }
    };
    let pools = effective
        .get("maxConnectionPools")
        .and_then(Value::as_u64)
        .map_or_else(String::new, |p| format!(" maxConnectionPools={p}"));
    let _ = writeln!(
        out,
        "    in force: maxConnections={} maxPendingRequests={} maxRequests={} maxRetries={}{pools} outlierDetection: {outlier}",
        n(effective, "maxConnections"),
        n(effective, "maxPendingRequests"),
        n(effective, "maxRequests"),
        n(effective, "maxRetries"),
    );
}

/// The MeshTimeout part of one inbound or outbound: the contributing policies, lowest
/// priority first, and the timeouts in force once they are merged over Kuma's defaults.
fn render_timeout(out: &mut String, explained: Option<&Value>) {
    let Some(explained) = explained.filter(|e| e.is_object()) else {
        return;
    };
    let names: Vec<&str> = explained
        .get("policies")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "  MeshTimeout");
    if names.is_empty() {
        let _ = writeln!(out, "    (no MeshTimeout applies: Kuma's defaults)");
    }
    for name in names {
        let _ = writeln!(out, "    {name}");
    }
    let Some(effective) = explained.get("effective").filter(|e| e.is_object()) else {
        return;
    };
    let field = |key: &str| {
        let ms = effective.get(key).and_then(Value::as_u64).unwrap_or(0);
        if ms == 0 {
            "none".to_string()
        } else {
            aerie_core::duration::format_go_duration(
                i64::try_from(ms)
                    .unwrap_or(i64::MAX / 1_000_000)
                    .saturating_mul(1_000_000),
            )
        }
    };
    let _ = writeln!(
        out,
        "    in force: connectionTimeout={} idleTimeout={} http.requestTimeout={} http.streamIdleTimeout={} http.maxStreamDuration={} http.maxConnectionDuration={} http.requestHeadersTimeout={}",
        field("connectMs"),
        field("idleMs"),
        field("requestMs"),
        field("streamIdleMs"),
        field("maxStreamMs"),
        field("maxConnectionMs"),
        field("requestHeadersMs"),
    );
}

pub async fn dataplane(args: InspectDataplaneArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let path = match args.inspection_type {
        InspectionType::Policies => format!(
            "/meshes/{}/dataplanes/{}/_policies",
            segment(&args.mesh),
            segment(&args.name)
        ),
        InspectionType::Config => format!(
            "/meshes/{}/dataplanes+insights/{}",
            segment(&args.mesh),
            segment(&args.name)
        ),
        other => {
            let name = match other {
                InspectionType::ConfigDump => "config-dump",
                InspectionType::Stats => "stats",
                _ => "clusters",
            };
            bail!(
                "--type={name} is not supported by this control plane yet: use --type=policies or --type=config"
            );
        }
    };
    let client = g.client()?;
    let resp = client.get(&path).await?;
    if resp.status == 404 {
        bail!("there is no Dataplane with name \"{}\"", args.name);
    }
    if !resp.is_success() {
        bail!(
            "failed to inspect Dataplane \"{}\" in mesh \"{}\": {}",
            args.name,
            args.mesh,
            resp.api_error()
        );
    }
    let answer = resp.json()?;
    let text = match (args.inspection_type, args.output) {
        (_, Format::Json) => yaml::to_json(&answer),
        (InspectionType::Policies, Format::Table) => {
            let needs_addresses = answer
                .get("inbounds")
                .and_then(Value::as_array)
                .is_some_and(|ins| ins.iter().any(|i| i.get("address").is_none()));
            let mut addresses = HashMap::new();
            if needs_addresses {
                // Best effort: without the Dataplane the inbounds are shown by port only.
                let dp_path = format!(
                    "/meshes/{}/dataplanes/{}",
                    segment(&args.mesh),
                    segment(&args.name)
                );
                if let Ok(r) = client.get(&dp_path).await
                    && r.is_success()
                    && let Ok(dp) = r.json()
                {
                    addresses = inbound_addresses(&dp);
                }
            }
            render_policies(&answer, &addresses)
        }
        _ => yaml::to_yaml(&answer),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn meshes(args: InspectMeshesArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let client = g.client()?;
    let resp = client.get("/meshes").await?;
    if !resp.is_success() {
        bail!("failed to list Meshes: {}", resp.api_error());
    }
    let body = resp.json()?;
    let meshes = items_of(&body, "Meshes")?;
    let text = match args.output {
        Format::Table => {
            let now = OffsetDateTime::now_utc();
            let mut rows = Vec::with_capacity(meshes.len());
            for m in &meshes {
                let name = s(m, &["name"]);
                let overviews = items_of(&list_overviews(&client, name).await?, "Dataplanes")?;
                let online = overviews.iter().filter(|o| is_online(o)).count();
                rows.push(vec![
                    name.to_string(),
                    table::mtls_cell(m),
                    format!("{online}/{}", overviews.len()),
                    table::age(m, now),
                ]);
            }
            table::render(&["NAME", "mTLS", "DATAPLANES", "AGE"], &rows, None)
        }
        Format::Yaml => yaml::to_yaml(&body),
        Format::Json => yaml::to_json(&body),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// The columns of `kumactl inspect zones` (kumactl 2.14's).
pub const ZONE_HEADERS: [&str; 8] = [
    "NAME",
    "STATUS",
    "LAST CONNECTED AGO",
    "LAST UPDATED AGO",
    "TOTAL UPDATES",
    "TOTAL ERRORS",
    "ZONE-CP VERSION",
    "BACKEND",
];

/// The columns of `kumactl inspect zoneingresses`.
pub const ZONE_INGRESS_HEADERS: [&str; 5] =
    ["NAME", "ZONE", "STATUS", "ADDRESS", "AVAILABLE SERVICES"];

/// kumactl's "ago" cell for an RFC 3339 time: `never` when missing or unreadable.
fn ago(t: Option<&Value>, now: OffsetDateTime) -> String {
    match t.and_then(parse_time) {
        Some(t) => table::human_duration((now - t).whole_seconds().max(0)),
        None => "never".into(),
    }
}

/// A counter as the API writes it: a number, or (protobuf JSON for 64-bit) a string.
fn counter(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// One row of `kumactl inspect zones` for a ZoneOverview: Online when the zone is enabled
/// and its latest KDS subscription is still open; totals summed over every subscription.
pub fn zone_overview_row(overview: &Value, now: OffsetDateTime) -> Vec<String> {
    let insight = overview.get("zoneInsight");
    let sub = latest_of(insight);
    let enabled = overview
        .get("zone")
        .and_then(|z| z.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let online = enabled && sub.is_some_and(is_open);
    let subs = insight
        .and_then(|i| i.get("subscriptions"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let total = |key: &str| -> u64 {
        subs.iter()
            .map(|s| {
                counter(
                    s.get("status")
                        .and_then(|st| st.get("total"))
                        .and_then(|t| t.get(key)),
                )
            })
            .fold(0u64, u64::saturating_add)
    };
    // The zone's `config` is its control plane's configuration as JSON text.
    let backend = sub
        .and_then(|s| s.get("config"))
        .and_then(Value::as_str)
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .map(|c| s(&c, &["store", "type"]).to_string())
        .unwrap_or_default();
    vec![
        s(overview, &["name"]).to_string(),
        if online { "Online" } else { "Offline" }.to_string(),
        ago(sub.and_then(|s| s.get("connectTime")), now),
        ago(
            sub.and_then(|s| s.get("status"))
                .and_then(|st| st.get("lastUpdateTime")),
            now,
        ),
        total("responsesSent").to_string(),
        total("responsesRejected").to_string(),
        sub.map(|sub| s(sub, &["version", "kumaCp", "version"]).to_string())
            .unwrap_or_default(),
        backend,
    ]
}

/// One row of `kumactl inspect zoneingresses` for a ZoneIngressOverview.
pub fn zone_ingress_overview_row(overview: &Value) -> Vec<String> {
    let spec = overview.get("zoneIngress").unwrap_or(&Value::Null);
    let online = match overview.get("online").and_then(Value::as_bool) {
        Some(online) => online,
        None => latest_of(overview.get("zoneIngressInsight")).is_some_and(is_open),
    };
    let services = spec
        .get("availableServices")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    vec![
        s(overview, &["name"]).to_string(),
        table::zone_ingress_zone(spec),
        if online { "Online" } else { "Offline" }.to_string(),
        table::zone_ingress_address(spec),
        services.to_string(),
    ]
}

/// `GET path` as a `{total, items, next}` list of overviews.
async fn list_of(client: &Client, path: &str, what: &str) -> Result<(Value, Vec<Value>)> {
    let resp = client.get(path).await?;
    if !resp.is_success() {
        bail!("failed to list {what}: {}", resp.api_error());
    }
    let body = resp.json()?;
    let items = items_of(&body, what)?;
    Ok((body, items))
}

pub async fn zones(args: InspectListArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let client = g.client()?;
    let (body, items) = list_of(&client, "/zones+insights", "Zones").await?;
    let text = match args.output {
        Format::Table => {
            let now = OffsetDateTime::now_utc();
            let rows: Vec<Vec<String>> = items.iter().map(|o| zone_overview_row(o, now)).collect();
            table::render(&ZONE_HEADERS, &rows, None)
        }
        Format::Yaml => yaml::to_yaml(&body),
        Format::Json => yaml::to_json(&body),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn zone_ingresses(args: InspectListArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let client = g.client()?;
    let (body, items) = list_of(&client, "/zoneingresses+insights", "ZoneIngresses").await?;
    let text = match args.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = items.iter().map(zone_ingress_overview_row).collect();
            table::render(&ZONE_INGRESS_HEADERS, &rows, None)
        }
        Format::Yaml => yaml::to_yaml(&body),
        Format::Json => yaml::to_json(&body),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    fn online_overview() -> Value {
        json!({"type": "DataplaneOverview", "mesh": "default", "name": "check-in-api-blu-1",
            "online": true,
            "dataplane": {"networking": {"address": "127.0.0.1", "inbound": [
                {"port": 9000, "tags": {"kuma.io/service": "check-in-api-blu", "version": "v1"}},
                {"port": 9001, "tags": {"kuma.io/service": "check-in-api-blu", "version": "v1"}}]}},
            "dataplaneInsight": {
                "subscriptions": [
                    {"connectTime": "2026-03-01T09:00:00Z", "disconnectTime": "2026-03-01T10:00:00Z",
                     "status": {"configVersionAcknowledged": "old"}},
                    {"connectTime": "2026-03-01T11:57:00Z",
                     "status": {"total": {"responsesSent": 4, "responsesAcknowledged": 4},
                                "configVersionSent": "a1b2", "configVersionAcknowledged": "a1b2", "lastNack": null},
                     "version": {"kumaDp": {"version": "0.1.0"}}}],
                "mTLS": {"certificateExpirationTime": "2026-03-02T11:57:00Z", "certificateRegenerations": 2}}})
    }

    fn offline_overview() -> Value {
        json!({"type": "DataplaneOverview", "mesh": "default", "name": "flight-control-blu-1",
            "online": false,
            "dataplane": {"networking": {"address": "127.0.0.2", "inbound": [
                {"port": 8080, "tags": {"kuma.io/service": "flight-control-blu"}}]}},
            "dataplaneInsight": {"subscriptions": [], "mTLS": null}})
    }

    #[test]
    fn dataplanes_table_online_and_offline() {
        let rows: Vec<Vec<String>> = [online_overview(), offline_overview()]
            .iter()
            .map(|o| overview_row(o, NOW))
            .collect();
        assert_eq!(
            table::render(&DATAPLANE_HEADERS, &rows, None),
            "MESH      NAME                   TAGS                                          STATUS    LAST CONNECTED AGO   CONFIG ACKED   CERT EXPIRATION        CERT REGENERATIONS   KUMA-DP VERSION\n\
             default   check-in-api-blu-1     kuma.io/service=check-in-api-blu version=v1   Online    3m                   a1b2           2026-03-02T11:57:00Z   2                    0.1.0\n\
             default   flight-control-blu-1   kuma.io/service=flight-control-blu            Offline   never                -              -                      -                    -\n"
        );
    }

    #[test]
    fn online_falls_back_to_the_subscriptions() {
        let mut o = online_overview();
        o.as_object_mut().unwrap().remove("online");
        assert!(is_online(&o));
        let mut o = offline_overview();
        o.as_object_mut().unwrap().remove("online");
        assert!(!is_online(&o));
    }

    #[test]
    fn tag_filter_needs_every_tag() {
        let o = online_overview();
        let f = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert!(matches_tags(&o, &[]));
        assert!(matches_tags(&o, &[f("version", "v1")]));
        assert!(matches_tags(
            &o,
            &[f("kuma.io/service", "check-in-api-blu"), f("version", "v1")]
        ));
        assert!(!matches_tags(&o, &[f("version", "v1"), f("version", "v2")]));
        assert!(!matches_tags(&offline_overview(), &[f("version", "v1")]));
    }

    #[test]
    fn policies_are_rendered_per_inbound() {
        let answer = json!({"mesh": "default", "name": "check-in-api-blu-1", "inbounds": [
            {"port": 9000, "service": "check-in-api-blu", "mtls": true, "policies": [
                {"name": "allow-flight-control-to-check-in",
                 "targetRef": {"kind": "MeshService", "name": "check-in-api-blu"},
                 "from": [{"targetRef": {"kind": "MeshService", "name": "flight-control-blu"},
                           "action": "Allow", "callers": [{"service": "flight-control-blu"}]}]},
                {"name": "default-deny", "targetRef": {"kind": "Mesh"},
                 "from": [{"targetRef": {"kind": "Mesh"}, "action": "Deny", "callers": [{"anyInMesh": true}]}]}]},
            {"port": 9001, "service": "check-in-api-blu", "mtls": true, "policies": [
                {"name": "broken", "from": [
                    {"targetRef": {"kind": "MeshSubset", "tags": {"version": "v2", "app": "x"}}, "callers": []}]}]},
            {"port": 9002, "name": "admin", "service": "", "mtls": true, "policies": []}]});
        let addrs = HashMap::from([(9000, "127.0.0.1".to_string()), (9001, "::1".to_string())]);
        assert_eq!(
            render_policies(&answer, &addrs),
            "inbound 127.0.0.1:9000 (check-in-api-blu):\n\
             \x20 MeshTrafficPermission\n\
             \x20   allow-flight-control-to-check-in\n\
             \x20     from MeshService flight-control-blu: Allow\n\
             \x20   default-deny\n\
             \x20     from Mesh: Deny\n\
             \n\
             inbound [::1]:9001 (check-in-api-blu):\n\
             \x20 MeshTrafficPermission\n\
             \x20   broken\n\
             \x20     from MeshSubset app=x,version=v2: no action (grants nothing) (matches no caller)\n\
             \n\
             inbound :9002 (admin):\n\
             \x20 no MeshTrafficPermission selects this inbound: all traffic is denied\n"
        );
    }

    #[test]
    fn faults_and_rate_limits_are_rendered_per_inbound() {
        let answer = json!({"mesh": "default", "name": "web-1",
            "inbounds": [{"port": 80, "service": "web", "mtls": true, "policies": [],
                "meshFaultInjection": {"policies": ["chaos"], "effective": {
                    "combine": "first",
                    "entries": [
                        {"callers": {"tags": [["kuma.io/service", "flight-control"]]},
                         "faults": [{"abort": {"status": 503, "perMillion": 500_000},
                                     "delay": {"ms": 300, "perMillion": 125_000}}]},
                        {"faults": [{"responseBandwidth": {"bytesPerSecond": 10240, "perMillion": 1_000_000}}]}]}},
                "meshRateLimit": {"policies": ["rl"], "effective": {
                    "http": [
                        {"callers": {"spiffePrefix": "spiffe://default/"}},
                        {"limit": {"rate": {"num": 10, "intervalMs": 1000}, "status": 423,
                                   "headers": [{"name": "x-limited", "value": "yes", "append": true}]}}],
                    "tcp": {"num": 5, "intervalMs": 10_000}}}},
                {"port": 81, "service": "web", "mtls": true, "policies": [],
                 "meshFaultInjection": {"policies": [], "effective": null},
                 "meshRateLimit": {"policies": [], "effective": null}}],
            "outbounds": []});
        let text = render_policies(&answer, &HashMap::new());
        assert!(
            text.contains(
                "  MeshFaultInjection\n    chaos\n    in force (the first entry matching the caller applies):\n      kuma.io/service=flight-control: delay 300ms (12.5%), abort 503 (50%)\n      every caller: responseBandwidth 10240 B/s (100%)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  MeshRateLimit\n    rl\n    in force: http spiffeID=spiffe://default/*: not limited\n    in force: http every caller: 10 per 1s requests, then 423 add x-limited: yes\n    in force: tcp: 5 per 10s connections\n"
            ),
            "{text}"
        );
        let second = text.split("inbound ").nth(2).unwrap_or_default();
        assert!(
            !second.contains("MeshFaultInjection") && !second.contains("MeshRateLimit"),
            "{text}"
        );
    }

    #[test]
    fn timeouts_are_rendered_per_inbound_and_outbound() {
        let effective = |request: u64| {
            json!({"connectMs": 5000, "idleMs": 3_600_000,
            "requestMs": request, "streamIdleMs": 1_800_000, "maxStreamMs": 0,
            "maxConnectionMs": 0, "requestHeadersMs": 0})
        };
        let answer = json!({"mesh": "default", "name": "web-1",
            "inbounds": [{"port": 80, "service": "web", "mtls": false, "policies": [],
                "meshTimeout": {"policies": ["mesh-timeout-all-default"], "effective": effective(15_000)}}],
            "outbounds": [
                {"address": "127.0.0.1", "port": 10001,
                 "target": {"type": "service", "name": "backend"},
                 "meshTimeout": {"policies": ["mesh-timeout-all-default", "slow-backend"],
                                 "effective": effective(90_000)}},
                {"address": "127.0.0.1", "port": 10002,
                 "target": {"type": "resource", "kind": "MeshService", "name": "db", "section": "5432"},
                 "meshTimeout": {"policies": [], "effective": effective(15_000)}},
                {"address": "127.0.0.1", "port": 10003, "target": {"type": "unresolved"}}]});
        let defaults = "connectionTimeout=5s idleTimeout=1h0m0s http.requestTimeout=15s \
                        http.streamIdleTimeout=30m0s http.maxStreamDuration=none \
                        http.maxConnectionDuration=none http.requestHeadersTimeout=none";
        let slow = defaults.replace("http.requestTimeout=15s", "http.requestTimeout=1m30s");
        assert_eq!(
            render_policies(&answer, &HashMap::from([(80, "10.0.0.1".to_string())])),
            format!(
                "inbound 10.0.0.1:80 (web):\n\
                 \x20 mTLS is off in mesh default: all traffic is allowed\n\
                 \x20 MeshTimeout\n\
                 \x20   mesh-timeout-all-default\n\
                 \x20   in force: {defaults}\n\
                 \n\
                 outbound 127.0.0.1:10001 (to kuma.io/service=backend):\n\
                 \x20 MeshTimeout\n\
                 \x20   mesh-timeout-all-default\n\
                 \x20   slow-backend\n\
                 \x20   in force: {slow}\n\
                 \n\
                 outbound 127.0.0.1:10002 (to MeshService db sectionName=5432):\n\
                 \x20 MeshTimeout\n\
                 \x20   (no MeshTimeout applies: Kuma's defaults)\n\
                 \x20   in force: {defaults}\n\
                 \n\
                 outbound 127.0.0.1:10003 (to unresolved):\n"
            )
        );
    }

    #[test]
    fn retries_and_circuit_breakers_are_rendered_per_outbound() {
        let answer = json!({"mesh": "default", "name": "web-1", "inbounds": [
                {"port": 80, "service": "web", "mtls": false, "policies": []}],
            "outbounds": [
                {"address": "127.0.0.1", "port": 10001,
                 "target": {"type": "service", "name": "backend"},
                 "meshRetry": {"policies": ["mesh-retry-all-default", "backend-503"], "effective": {
                     "http": {"numRetries": 3, "perTryTimeoutMs": 16000, "baseIntervalMs": 25,
                              "maxIntervalMs": 250, "retryOn": ["gateway-error"], "statusCodes": [503],
                              "methods": ["GET"],
                              "rateLimited": {"resetHeaders": [{"name": "retry-after", "format": "Seconds"}],
                                              "maxIntervalMs": 300000},
                              "responseHeaders": [{"name": "x-retry", "type": "Present"}]},
                     "tcpMaxConnectAttempt": 5}},
                 "meshCircuitBreaker": {"policies": ["backend-cb"], "effective": {
                     "maxConnections": 1024, "maxPendingRequests": 1024, "maxRequests": 1,
                     "maxRetries": 3, "maxConnectionPools": 8,
                     "outlier": {"baseEjectionMs": 30000, "maxEjectionPercent": 50, "intervalMs": 1000,
                                 "consecutive5xx": 3,
                                 "successRate": {"minimumHosts": 3, "requestVolume": 10, "stdevFactor": 1900},
                                 "failurePercentage": {"minimumHosts": 5, "requestVolume": 50, "threshold": 85}}}}},
                {"address": "127.0.0.1", "port": 10002,
                 "target": {"type": "service", "name": "db"},
                 "meshRetry": {"policies": [], "effective": {"tcpMaxConnectAttempt": 1}},
                 "meshCircuitBreaker": {"policies": [], "effective": {
                     "maxConnections": 1024, "maxPendingRequests": 1024, "maxRequests": 1024,
                     "maxRetries": 3}}}]});
        assert_eq!(
            render_policies(&answer, &HashMap::new()),
            "inbound :80 (web):\n\
             \x20 mTLS is off in mesh default: all traffic is allowed\n\
             \n\
             outbound 127.0.0.1:10001 (to kuma.io/service=backend):\n\
             \x20 MeshRetry\n\
             \x20   mesh-retry-all-default\n\
             \x20   backend-503\n\
             \x20   in force: http: numRetries=3 perTryTimeout=16s backOff=25ms..250ms retryOn=gateway-error,503 methods=GET rateLimitedBackOff=retry-after:Seconds..5m0s retriableResponseHeaders=x-retry; grpc: no retries; tcp: maxConnectAttempt=5\n\
             \x20 MeshCircuitBreaker\n\
             \x20   backend-cb\n\
             \x20   in force: maxConnections=1024 maxPendingRequests=1024 maxRequests=1 maxRetries=3 maxConnectionPools=8 outlierDetection: baseEjectionTime=30s maxEjectionPercent=50 totalFailures=3 gatewayFailures=- localOriginFailures=- successRate=minimumHosts:3,requestVolume:10,standardDeviationFactor:1.9 failurePercentage=minimumHosts:5,requestVolume:50,threshold:85 interval=1s\n\
             \n\
             outbound 127.0.0.1:10002 (to kuma.io/service=db):\n\
             \x20 MeshRetry\n\
             \x20   (no MeshRetry applies: nothing is retried)\n\
             \x20   in force: http: no retries; grpc: no retries; tcp: maxConnectAttempt=1\n\
             \x20 MeshCircuitBreaker\n\
             \x20   (no MeshCircuitBreaker applies: Envoy's defaults)\n\
             \x20   in force: maxConnections=1024 maxPendingRequests=1024 maxRequests=1024 maxRetries=3 outlierDetection: off\n"
        );
    }

    #[test]
    fn policies_with_mtls_off() {
        let answer = json!({"mesh": "demo", "name": "web-1", "inbounds": [
            {"port": 80, "service": "web", "mtls": false, "policies": []},
            {"port": 81, "service": "web", "mtls": false, "policies": [
                {"name": "allow-all", "from": [{"targetRef": {"kind": "Mesh"}, "action": "Allow"}]}]}]});
        let addrs = inbound_addresses(&json!({"networking": {"address": "10.0.0.1",
            "inbound": [{"port": 80}, {"port": 81, "address": "10.0.0.2"}]}}));
        assert_eq!(
            render_policies(&answer, &addrs),
            "inbound 10.0.0.1:80 (web):\n\
             \x20 mTLS is off in mesh demo: all traffic is allowed\n\
             \n\
             inbound 10.0.0.2:81 (web):\n\
             \x20 mTLS is off in mesh demo: all traffic is allowed\n\
             \x20 (the MeshTrafficPermissions below take effect once mTLS is enabled)\n\
             \x20 MeshTrafficPermission\n\
             \x20   allow-all\n\
             \x20     from Mesh: Allow\n"
        );
        assert_eq!(
            render_policies(&json!({"mesh": "m", "name": "x", "inbounds": []}), &addrs),
            "Dataplane \"x\" has no inbounds\n"
        );
    }

    #[test]
    fn target_refs_read_well() {
        assert_eq!(target_ref_text(None), "Mesh");
        assert_eq!(target_ref_text(Some(&json!({"kind": "Mesh"}))), "Mesh");
        assert_eq!(
            target_ref_text(Some(
                &json!({"kind": "MeshService", "name": "web", "namespace": "demo", "sectionName": "http"})
            )),
            "MeshService web namespace=demo sectionName=http"
        );
    }

    #[test]
    fn zone_rows() {
        let online = json!({"type": "ZoneOverview", "name": "zone-1", "zone": {"enabled": true},
            "zoneInsight": {"subscriptions": [
                {"id": "a", "connectTime": "2026-03-01T09:00:00Z", "disconnectTime": "2026-03-01T10:00:00Z",
                 "status": {"lastUpdateTime": "2026-03-01T09:30:00Z",
                            "total": {"responsesSent": "30", "responsesAcknowledged": "30", "responsesRejected": "2"}}},
                {"id": "b", "connectTime": "2026-03-01T11:57:00Z",
                 "status": {"lastUpdateTime": "2026-03-01T11:59:30Z",
                            "total": {"responsesSent": 12, "responsesAcknowledged": 12}},
                 "version": {"kumaCp": {"version": "0.1.0"}},
                 "config": "{\"store\":{\"type\":\"postgres\"}}"}]}});
        assert_eq!(
            zone_overview_row(&online, NOW),
            [
                "zone-1", "Online", "3m", "30s", "42", "2", "0.1.0", "postgres"
            ]
        );
        // Disabled zones are Offline even when connected.
        let mut disabled = online.clone();
        disabled["zone"]["enabled"] = json!(false);
        assert_eq!(zone_overview_row(&disabled, NOW)[1], "Offline");
        // The latest subscription closed: Offline.
        let mut gone = online.clone();
        gone["zoneInsight"]["subscriptions"][1]["disconnectTime"] = json!("2026-03-01T11:58:00Z");
        assert_eq!(zone_overview_row(&gone, NOW)[1], "Offline");
        // Never connected, odd values: no panic, sensible cells.
        let never = json!({"name": "zone-2", "zone": {}, "zoneInsight": {"subscriptions": [
            {"connectTime": "yesterday", "status": {"total": {"responsesSent": "lots"}}, "config": "not json"}]}});
        assert_eq!(
            zone_overview_row(&never, NOW),
            ["zone-2", "Online", "never", "never", "0", "0", "", ""]
        );
        assert_eq!(
            zone_overview_row(&json!({"name": "zone-3"}), NOW),
            ["zone-3", "Offline", "never", "never", "0", "0", "", ""]
        );
    }

    #[test]
    fn zone_ingress_rows() {
        let overview = json!({"type": "ZoneIngressOverview", "name": "ingress-1",
            "zoneIngress": {"zone": "zone-1",
                "networking": {"address": "192.168.0.1", "port": 10001, "advertisedAddress": "10.0.0.1", "advertisedPort": 10000},
                "availableServices": [{"mesh": "default", "instances": 2, "tags": {"kuma.io/service": "web"}},
                                      {"mesh": "default", "instances": 1, "tags": {"kuma.io/service": "api"}}]},
            "zoneIngressInsight": {"subscriptions": [{"connectTime": "2026-03-01T11:00:00Z"}]}});
        assert_eq!(
            zone_ingress_overview_row(&overview),
            ["ingress-1", "zone-1", "Online", "10.0.0.1:10000", "2"]
        );
        let mut offline = overview.clone();
        offline["zoneIngressInsight"]["subscriptions"][0]["disconnectTime"] =
            json!("2026-03-01T11:30:00Z");
        assert_eq!(zone_ingress_overview_row(&offline)[2], "Offline");
        assert_eq!(
            zone_ingress_overview_row(&json!({"name": "bare"})),
            ["bare", "", "Offline", "", "0"]
        );
    }
}
