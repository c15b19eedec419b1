//! `kumactl inspect dataplanes`, `kumactl inspect dataplane NAME --type=policies|config`,
//! `kumactl inspect meshes`, `kumactl inspect zones` and `kumactl inspect zoneingresses`, read
//! from the control plane's insight endpoints (`/meshes/{mesh}/dataplanes+insights`,
//! `/meshes/{mesh}/dataplanes/{name}/policies`, `/zones+insights`, `/zoneingresses+insights`).

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

/// kumactl's attachment label (`attachmentToStr(true)`): `DATAPLANE`, `SERVICE name`, else
/// `INBOUND name(service)` / `OUTBOUND name(service)`.
fn attachment_text(entry: &Value) -> String {
    let kind = s(entry, &["type"]);
    let name = s(entry, &["name"]);
    match kind {
        "dataplane" => kind.to_uppercase(),
        "service" => format!("{} {name}", kind.to_uppercase()),
        _ => format!("{} {name}({})", kind.to_uppercase(), s(entry, &["service"])),
    }
}

/// kumactl 2.14's text for `inspect dataplane --type=policies` (its Go template, quirks
/// included: after the first name of a type the next ones are not indented): per
/// attachment, each policy type with the names of its policies, then a blank line.
pub fn render_matched_policies(answer: &Value) -> String {
    let mut out = String::new();
    if !matches!(s(answer, &["kind"]), "SidecarDataplane" | "") {
        return out;
    }
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for item in items {
        let _ = writeln!(out, "{}:", attachment_text(item));
        if let Some(Value::Object(by_type)) = item.get("matchedPolicies") {
            let mut types: Vec<(&String, &Value)> = by_type.iter().collect();
            types.sort_by(|a, b| a.0.cmp(b.0));
            for (typ, policies) in types {
                let _ = write!(out, "  {typ}\n    ");
                for p in policies.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let _ = writeln!(out, "{}", s(p, &["name"]));
                }
            }
        }
        out.push('\n');
    }
    out
}

pub async fn dataplane(args: InspectDataplaneArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let path = match args.inspection_type {
        InspectionType::Policies => format!(
            "/meshes/{}/dataplanes/{}/policies",
            segment(&args.mesh),
            segment(&args.name)
        ),
        InspectionType::Config => format!(
            "/meshes/{}/dataplanes/{}/_config",
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
    if resp.status != 200 {
        // kumactl 2.14's message: the status and the body as the control plane sent it.
        bail!("({}): {}", resp.status, resp.text());
    }
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
        (InspectionType::Policies, Format::Table) => render_matched_policies(&answer),
        // As kumactl 2.14: the control plane's `{"xds": ...}` document as it is.
        (InspectionType::Config, Format::Table) => yaml::to_json(&answer),
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
    fn matched_policies_render_as_kumactl_does() {
        let answer = json!({"kind": "SidecarDataplane", "total": 3, "items": [
            {"type": "dataplane", "matchedPolicies": {
                "MeshTimeout": [{"name": "mesh-timeout-all-default"}, {"name": "fast"}],
                "MeshCircuitBreaker": [{"name": "mesh-circuit-breaker-all-default"}]}},
            {"type": "inbound", "name": "127.0.0.1:80:8080", "service": "backend",
             "matchedPolicies": {"TrafficPermission": [{"name": "tp-1"}]}},
            {"type": "service", "name": "elastic", "service": "elastic",
             "matchedPolicies": {"HealthCheck": [{"name": "hc-1"}]}}]});
        // Types in name order; the second name of a type is not indented (kumactl's
        // template); a blank line after each attachment.
        assert_eq!(
            render_matched_policies(&answer),
            "DATAPLANE:\n  MeshCircuitBreaker\n    mesh-circuit-breaker-all-default\n  MeshTimeout\n    mesh-timeout-all-default\nfast\n\n\
             INBOUND 127.0.0.1:80:8080(backend):\n  TrafficPermission\n    tp-1\n\n\
             SERVICE elastic:\n  HealthCheck\n    hc-1\n\n"
        );
        assert_eq!(
            render_matched_policies(&json!({"kind": "SidecarDataplane", "total": 0, "items": []})),
            ""
        );
        assert_eq!(
            render_matched_policies(&json!({"kind": "MeshGatewayDataplane"})),
            ""
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
