//! kumactl's table output: columns separated by at least three spaces (Go's
//! `tabwriter.NewWriter(out, 1, 0, 3, ' ', 0)`), a pagination footer, and per-type rows
//! computed from the Universal JSON the API returns.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use aerie_core::{ResourceType, Scope};
use serde_json::Value;
use tabwriter::TabWriter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Renders a header row, data rows and an optional footer (after an empty line).
pub fn render(headers: &[&str], rows: &[Vec<String>], footer: Option<&str>) -> String {
    let mut tw = TabWriter::new(Vec::new()).minwidth(1).padding(3);
    // Writing into a Vec cannot fail.
    let _ = writeln!(tw, "{}", headers.join("\t"));
    for row in rows {
        // A tab inside a cell would shift the columns.
        let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        let _ = writeln!(tw, "{}", cells.join("\t"));
    }
    let _ = tw.flush();
    let mut out = String::from_utf8_lossy(&tw.into_inner().unwrap_or_default()).into_owned();
    if let Some(f) = footer.filter(|f| !f.is_empty()) {
        out.push('\n');
        out.push_str(f);
        out.push('\n');
    }
    out
}

/// kumactl's age cell: `5s`, `3m`, `2h`, `4d`, `1y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        "never".into()
    } else if seconds < 0 {
        "0s".into()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m", seconds / 60)
    } else if seconds < 86_400 {
        format!("{}h", seconds / 3600)
    } else if seconds < 365 * 86_400 {
        format!("{}d", seconds / 86_400)
    } else {
        format!("{}y", seconds / (365 * 86_400))
    }
}

/// The AGE of a resource, from its `modificationTime` (as kumactl does), or its
/// `creationTime` when that is missing.
pub fn age(item: &Value, now: OffsetDateTime) -> String {
    let t = ["modificationTime", "creationTime"]
        .iter()
        .filter_map(|k| item.get(*k).and_then(Value::as_str))
        .find_map(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
    match t {
        Some(t) => human_duration((now - t).whole_seconds()),
        None => "unknown".into(),
    }
}

/// `Rerun command with --offset=K ...` when the list has a next page.
pub fn pagination_footer(next: &Value) -> Option<String> {
    let next = next.as_str()?;
    let query = next.split_once('?').map(|(_, q)| q).unwrap_or("");
    let offset = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("offset="))
        .filter(|o| !o.is_empty())?;
    Some(format!(
        "Rerun command with --offset={offset} argument to retrieve more resources"
    ))
}

/// The string at a JSON path, or `""` when it is missing or not a string.
pub fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(*p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn on_off(v: Option<&Value>) -> &'static str {
    if v.and_then(Value::as_bool).unwrap_or(false) {
        "on"
    } else {
        "off"
    }
}

/// The mTLS cell of a mesh: `type/name` of the enabled backend, or `off`.
pub fn mtls_cell(mesh: &Value) -> String {
    let enabled = s(mesh, &["mtls", "enabledBackend"]);
    if enabled.is_empty() {
        return "off".into();
    }
    let backends = mesh
        .get("mtls")
        .and_then(|m| m.get("backends"))
        .and_then(Value::as_array);
    match backends.and_then(|bs| bs.iter().find(|b| s(b, &["name"]) == enabled)) {
        Some(b) => format!("{}/{}", s(b, &["type"]), enabled),
        None => "off".into(),
    }
}

/// Every tag of a Dataplane's inbounds (and its gateway), values sorted and deduplicated.
pub fn tag_set(dp: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut set: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let networking = dp.get("networking");
    let mut add = |tags: Option<&Value>| {
        if let Some(Value::Object(m)) = tags {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    set.entry(k.clone()).or_default().insert(v.to_string());
                }
            }
        }
    };
    if let Some(Value::Array(inbounds)) = networking.and_then(|n| n.get("inbound")) {
        for i in inbounds {
            add(i.get("tags"));
        }
    }
    add(networking
        .and_then(|n| n.get("gateway"))
        .and_then(|g| g.get("tags")));
    set
}

/// Kuma's `TagSet().String()`: every inbound's (and a gateway's) tags, `k=v1,v2` sorted,
/// separated by spaces.
pub fn tags_cell(dp: &Value) -> String {
    tag_set(dp)
        .iter()
        .map(|(k, vs)| format!("{k}={}", vs.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `address:port`, with brackets around an IPv6 address; `""` without an address.
pub fn host_port(address: &str, port: Option<u64>) -> String {
    if address.is_empty() {
        return String::new();
    }
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Where other zones reach a zone ingress: `advertisedAddress` (else `address`) and
/// `advertisedPort` (else `port`), as the ingress advertises itself. `spec` is a ZoneIngress (fields at the top level, as the REST API returns
/// it, or under `spec`).
pub fn zone_ingress_address(spec: &Value) -> String {
    let spec = spec.get("spec").filter(|v| v.is_object()).unwrap_or(spec);
    let port = |k: &str| {
        spec.get("networking")
            .and_then(|n| n.get(k))
            .and_then(Value::as_u64)
            .filter(|p| *p != 0)
    };
    let mut address = s(spec, &["networking", "advertisedAddress"]);
    if address.is_empty() {
        address = s(spec, &["networking", "address"]);
    }
    host_port(address, port("advertisedPort").or_else(|| port("port")))
}

/// The zone of a ZoneIngress (`zone`, or `spec.zone`).
pub fn zone_ingress_zone(spec: &Value) -> String {
    let zone = s(spec, &["zone"]);
    if zone.is_empty() {
        s(spec, &["spec", "zone"]).to_string()
    } else {
        zone.to_string()
    }
}

/// Headers and one row per item for a resource type.
pub fn rows_for(
    rtype: ResourceType,
    items: &[Value],
    now: OffsetDateTime,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let name = |v: &Value| s(v, &["name"]).to_string();
    let mesh = |v: &Value| s(v, &["mesh"]).to_string();
    match rtype {
        ResourceType::Mesh => (
            vec!["NAME", "mTLS", "LOCALITY", "ZONEEGRESS", "AGE"],
            items
                .iter()
                .map(|m| {
                    let routing = m.get("routing");
                    vec![
                        name(m),
                        mtls_cell(m),
                        on_off(routing.and_then(|r| r.get("localityAwareLoadBalancing"))).into(),
                        on_off(routing.and_then(|r| r.get("zoneEgress"))).into(),
                        age(m, now),
                    ]
                })
                .collect(),
        ),
        ResourceType::Dataplane => (
            vec!["MESH", "NAME", "TAGS", "ADDRESS", "AGE"],
            items
                .iter()
                .map(|d| {
                    let mut address = s(d, &["networking", "advertisedAddress"]);
                    if address.is_empty() {
                        address = s(d, &["networking", "address"]);
                    }
                    vec![
                        mesh(d),
                        name(d),
                        tags_cell(d),
                        address.to_string(),
                        age(d, now),
                    ]
                })
                .collect(),
        ),
        // Every targetRef policy, as Kuma's kumactl prints them.
        t if t.is_policy() => (
            vec!["MESH", "NAME", "TARGETREF KIND", "TARGETREF NAME", "AGE"],
            items
                .iter()
                .map(|p| {
                    let mut kind = s(p, &["spec", "targetRef", "kind"]);
                    if kind.is_empty() {
                        // No top-level targetRef: the policy applies to the whole mesh.
                        kind = "Mesh";
                    }
                    let target = s(p, &["spec", "targetRef", "name"]);
                    vec![
                        mesh(p),
                        name(p),
                        kind.to_string(),
                        target.to_string(),
                        age(p, now),
                    ]
                })
                .collect(),
        ),
        ResourceType::Zone => (
            vec!["NAME", "ENABLED", "AGE"],
            items
                .iter()
                .map(|z| {
                    // Kuma: a zone is enabled unless `enabled: false`.
                    let enabled = z.get("enabled").and_then(Value::as_bool).unwrap_or(true);
                    vec![name(z), enabled.to_string(), age(z, now)]
                })
                .collect(),
        ),
        ResourceType::ZoneIngress => (
            vec!["NAME", "ZONE", "ADDRESS", "AGE"],
            items
                .iter()
                .map(|zi| {
                    vec![
                        name(zi),
                        zone_ingress_zone(zi),
                        zone_ingress_address(zi),
                        age(zi, now),
                    ]
                })
                .collect(),
        ),
        other => match other.scope() {
            Scope::Mesh => (
                vec!["MESH", "NAME", "AGE"],
                items
                    .iter()
                    .map(|v| vec![mesh(v), name(v), age(v, now)])
                    .collect(),
            ),
            Scope::Global => (
                vec!["NAME", "AGE"],
                items.iter().map(|v| vec![name(v), age(v, now)]).collect(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    #[test]
    fn ages_like_kumactl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(180), "3m");
        assert_eq!(human_duration(7200 + 59 * 60), "2h");
        assert_eq!(human_duration(4 * 86_400 + 3600), "4d");
        assert_eq!(human_duration(400 * 86_400), "1y");
        assert_eq!(human_duration(-1), "0s");
        assert_eq!(human_duration(-5), "never");
        assert_eq!(
            age(&json!({"creationTime": "2026-03-01T11:59:55Z"}), NOW),
            "5s"
        );
        assert_eq!(
            age(
                &json!({"creationTime": "2026-01-01T00:00:00Z", "modificationTime": "2026-03-01T11:57:00+00:00"}),
                NOW
            ),
            "3m"
        );
        assert_eq!(age(&json!({"creationTime": "garbage"}), NOW), "unknown");
    }

    #[test]
    fn mesh_table_matches_kumactl_layout() {
        let items = vec![
            json!({"type": "Mesh", "name": "default", "creationTime": "2026-03-01T11:59:55Z"}),
            json!({"type": "Mesh", "name": "mesh-with-long-name", "creationTime": "2026-02-25T12:00:00Z",
                "mtls": {"backends": [{"name": "ca-1", "type": "builtin"}], "enabledBackend": "ca-1"},
                "routing": {"localityAwareLoadBalancing": true, "zoneEgress": true}}),
        ];
        let (h, rows) = rows_for(ResourceType::Mesh, &items, NOW);
        assert_eq!(
            render(&h, &rows, None),
            "NAME                  mTLS           LOCALITY   ZONEEGRESS   AGE\n\
             default               off            off        off          5s\n\
             mesh-with-long-name   builtin/ca-1   on         on           4d\n"
        );
    }

    #[test]
    fn policy_and_dataplane_tables() {
        let items = vec![
            json!({"type": "MeshTrafficPermission", "mesh": "default", "name": "allow-flight-control-to-check-in",
            "creationTime": "2026-03-01T10:00:00Z",
            "spec": {"targetRef": {"kind": "MeshService", "name": "check-in-api-blu"}, "from": []}}),
            json!({"type": "MeshTrafficPermission", "mesh": "default", "name": "allow-all",
            "creationTime": "2026-03-01T11:00:00Z", "spec": {"from": []}}),
        ];
        let (h, rows) = rows_for(ResourceType::MeshTrafficPermission, &items, NOW);
        assert_eq!(
            render(&h, &rows, None),
            "MESH      NAME                               TARGETREF KIND   TARGETREF NAME     AGE\n\
             default   allow-flight-control-to-check-in   MeshService      check-in-api-blu   2h\n\
             default   allow-all                          Mesh                                1h\n"
        );
        let dps = vec![
            json!({"type": "Dataplane", "mesh": "default", "name": "web-1", "creationTime": "2026-03-01T11:59:00Z",
            "networking": {"address": "10.0.0.1", "inbound": [
                {"port": 80, "tags": {"kuma.io/service": "web", "version": "v2"}},
                {"port": 81, "tags": {"kuma.io/service": "metrics"}}]}}),
        ];
        let (h, rows) = rows_for(ResourceType::Dataplane, &dps, NOW);
        assert_eq!(
            render(
                &h,
                &rows,
                Some("Rerun command with --offset=1 argument to retrieve more resources")
            ),
            "MESH      NAME    TAGS                                     ADDRESS    AGE\n\
             default   web-1   kuma.io/service=metrics,web version=v2   10.0.0.1   1m\n\
             \n\
             Rerun command with --offset=1 argument to retrieve more resources\n"
        );
        let (h, rows) = rows_for(ResourceType::GlobalSecret, &[json!({"name": "s1"})], NOW);
        assert_eq!(render(&h, &rows, None), "NAME   AGE\ns1     unknown\n");
    }

    #[test]
    fn zone_and_zone_ingress_tables() {
        let zones = vec![
            json!({"type": "Zone", "name": "zone-1", "creationTime": "2026-03-01T11:00:00Z"}),
            json!({"type": "Zone", "name": "zone-2", "enabled": false, "creationTime": "2026-03-01T11:59:00Z"}),
            json!({"type": "Zone", "name": "zone-3", "enabled": true}),
        ];
        let (h, rows) = rows_for(ResourceType::Zone, &zones, NOW);
        assert_eq!(
            render(&h, &rows, None),
            "NAME     ENABLED   AGE\n\
             zone-1   true      1h\n\
             zone-2   false     1m\n\
             zone-3   true      unknown\n"
        );
        let ingresses = vec![
            json!({"type": "ZoneIngress", "name": "ingress-1", "zone": "zone-1", "creationTime": "2026-03-01T11:59:50Z",
                "networking": {"address": "192.168.0.1", "port": 10001, "advertisedAddress": "10.0.0.1", "advertisedPort": 10000}}),
            json!({"type": "ZoneIngress", "name": "ingress-2", "creationTime": "2026-03-01T11:00:00Z",
                "networking": {"address": "fd00::1", "port": 10001}}),
            json!({"type": "ZoneIngress", "name": "ingress-3", "spec": {"zone": "zone-3",
                "networking": {"address": "10.1.0.1", "port": 10001, "advertisedAddress": "lb.example.com"}}}),
            json!({"type": "ZoneIngress", "name": "ingress-4"}),
        ];
        let (h, rows) = rows_for(ResourceType::ZoneIngress, &ingresses, NOW);
        assert_eq!(
            render(&h, &rows, None),
            "NAME        ZONE     ADDRESS                AGE\n\
             ingress-1   zone-1   10.0.0.1:10000         10s\n\
             ingress-2            [fd00::1]:10001        1h\n\
             ingress-3   zone-3   lb.example.com:10001   unknown\n\
             ingress-4                                   unknown\n"
        );
    }

    #[test]
    fn footer_reads_the_next_offset() {
        assert_eq!(
            pagination_footer(&json!("http://cp:5681/meshes?offset=2&size=2")).as_deref(),
            Some("Rerun command with --offset=2 argument to retrieve more resources")
        );
        assert_eq!(pagination_footer(&Value::Null), None);
        assert_eq!(pagination_footer(&json!("http://cp/meshes")), None);
    }
}
