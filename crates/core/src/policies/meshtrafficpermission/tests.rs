//! Unit tests: every targetRef kind on both sides, the seed walkthrough, shadow deny, mTLS off.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::spec::{DataplaneSpec, Inbound, MeshSpec, Networking, Tags};

const MESH: &str = "default";

fn mtls_on() -> MeshSpec {
    serde_json::from_value(json!({
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}
    }))
    .expect("mesh")
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn inbound(port: u32, name: Option<&str>, t: &[(&str, &str)]) -> Inbound {
    Inbound {
        port,
        name: name.map(str::to_owned),
        tags: tags(t),
        ..Inbound::default()
    }
}

fn dataplane(inbounds: Vec<Inbound>) -> DataplaneSpec {
    DataplaneSpec {
        networking: Some(Networking {
            address: "10.0.0.1".into(),
            inbound: inbounds,
            ..Networking::default()
        }),
        ..DataplaneSpec::default()
    }
}

fn service_dp(service: &str) -> DataplaneSpec {
    dataplane(vec![inbound(
        8080,
        Some("http"),
        &[("kuma.io/service", service)],
    )])
}

fn mtp(v: Value) -> MeshTrafficPermissionSpec {
    serde_json::from_value(v).expect("valid MeshTrafficPermission spec")
}

/// `{targetRef: <target>, from: [{targetRef: <from>, default: {action}}]}`.
fn policy(target: Value, from: Value, action: &str) -> MeshTrafficPermissionSpec {
    mtp(json!({"targetRef": target, "from": [{"targetRef": from, "default": {"action": action}}]}))
}

fn peer(service: &str) -> PeerIdentity {
    PeerIdentity::new(MESH, [service])
}

fn named(ps: &[(&str, &MeshTrafficPermissionSpec)]) -> Vec<(String, MeshTrafficPermissionSpec)> {
    ps.iter()
        .map(|(n, p)| ((*n).to_owned(), (*p).clone()))
        .collect()
}

fn refs(ps: &[(String, MeshTrafficPermissionSpec)]) -> Vec<(String, &MeshTrafficPermissionSpec)> {
    ps.iter().map(|(n, p)| (n.clone(), p)).collect()
}

fn resolve(dp: &DataplaneSpec, ps: &[(String, MeshTrafficPermissionSpec)]) -> Vec<InboundAuthz> {
    resolve_dataplane(MESH, &mtls_on(), "dp-1", &Tags::new(), dp, &refs(ps))
}

/// Two inbounds: `web` (port 8080 "http", version v1, zone a) and `web-admin` (9090 "admin").
fn two_inbounds() -> DataplaneSpec {
    dataplane(vec![
        inbound(
            8080,
            Some("http"),
            &[("kuma.io/service", "web"), ("version", "v1"), ("zone", "a")],
        ),
        inbound(
            9090,
            Some("admin"),
            &[("kuma.io/service", "web-admin"), ("version", "v2")],
        ),
    ])
}

/// Which inbounds of [`two_inbounds`] (on a dataplane `dp-1` with `labels`) a policy with
/// this top-level target selects, seen as "does `anyone` get in".
fn selected_with(target: Option<Value>, labels: &Tags, catalog: &MeshServiceCatalog) -> Vec<bool> {
    let mut body =
        json!({"from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]});
    if let Some(t) = target {
        body["targetRef"] = t;
    }
    let spec = mtp(body);
    let policies = [("p".to_owned(), &spec)];
    let dp = two_inbounds();
    let dp = DataplaneRef {
        mesh: MESH,
        name: "dp-1",
        labels,
        spec: &dp,
    };
    let index = PolicyIndex::with_mesh_services(&policies, catalog);
    let indexed = index.resolve(&mtls_on(), &dp);
    assert_eq!(
        indexed,
        index.resolve_scan(&mtls_on(), &dp),
        "index and scan disagree"
    );
    indexed
        .iter()
        .map(|a| a.check(&peer("anyone")).is_allowed())
        .collect()
}

fn selected(target: Value) -> Vec<bool> {
    selected_with(
        Some(target),
        &tags(&[("team", "x")]),
        &MeshServiceCatalog::default(),
    )
}

#[test]
fn mtls_off_allows_everyone_even_with_deny() {
    let deny = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Deny");
    let ps = named(&[("default-deny", &deny)]);
    let out = resolve_dataplane(
        MESH,
        &MeshSpec::default(),
        "dp-1",
        &Tags::new(),
        &two_inbounds(),
        &refs(&ps),
    );
    assert_eq!(out.len(), 2);
    for authz in &out {
        assert_eq!(authz.mode, AuthzMode::AllowAll);
        assert_eq!(authz.check(&peer("anything")), Decision::Allow);
        assert_eq!(
            authz.check(&PeerIdentity::new("other-mesh", ["x"])),
            Decision::Allow
        );
        assert_eq!(authz.check_unauthenticated(), Decision::Allow);
    }
    assert_eq!(out[1].port, 9090);
}

#[test]
fn mtls_on_without_policies_denies_everyone() {
    let out = resolve(&two_inbounds(), &[]);
    assert_eq!(out.len(), 2);
    for authz in &out {
        assert_eq!(authz.mode, AuthzMode::Enforce);
        assert_eq!(authz.grant_count(), 0);
        assert_eq!(authz.check(&peer("web")), Decision::Deny);
        assert_eq!(authz.check_unauthenticated(), Decision::Deny);
    }
}

#[test]
fn dataplane_without_networking_has_no_inbounds() {
    assert!(resolve(&DataplaneSpec::default(), &[]).is_empty());
}

/// The seed's "Your First Policy" walkthrough, step by step.
#[test]
fn seed_walkthrough() {
    let allow_all = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Allow");
    let default_deny = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Deny");
    let allow_fc = policy(
        json!({"kind": "MeshService", "name": "check-in-api-blu"}),
        json!({"kind": "MeshService", "name": "flight-control-blu"}),
        "Allow",
    );
    let check_in = service_dp("check-in-api-blu");
    let flight_control = service_dp("flight-control-blu");
    let callers = ["flight-control-blu", "check-in-api-blu", "booking-blu"];

    // Step 2: allow-all lets everyone reach everything.
    let step2 = named(&[("allow-all", &allow_all)]);
    for dp in [&check_in, &flight_control] {
        for c in callers {
            let v = resolve(dp, &step2)[0].clone();
            assert_eq!(v.check(&peer(c)), Decision::Allow);
            assert_eq!(
                v.verdict(&peer(c)).policies().collect::<Vec<_>>(),
                ["allow-all"]
            );
        }
    }

    // Step 3: allow-all removed, default-deny only: nobody gets anywhere.
    let step3 = named(&[("default-deny", &default_deny)]);
    for dp in [&check_in, &flight_control] {
        for c in callers {
            assert_eq!(
                resolve(dp, &step3)[0].check(&peer(c)),
                Decision::Deny,
                "{c}"
            );
        }
    }

    // Step 4: default-deny + allow-flight-control-to-check-in.
    let step4 = named(&[
        ("default-deny", &default_deny),
        ("allow-flight-control-to-check-in", &allow_fc),
    ]);
    let at_check_in = &resolve(&check_in, &step4)[0];
    let v = at_check_in.verdict(&peer("flight-control-blu"));
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(
        v.policies().collect::<Vec<_>>(),
        ["allow-flight-control-to-check-in"]
    );
    assert_eq!(at_check_in.check(&peer("booking-blu")), Decision::Deny);
    assert_eq!(at_check_in.check(&peer("check-in-api-blu")), Decision::Deny);
    let at_flight_control = &resolve(&flight_control, &step4)[0];
    for c in callers {
        assert_eq!(at_flight_control.check(&peer(c)), Decision::Deny, "{c}");
    }

    // The seed's warning: with allow-all still present, Allow wins over default-deny.
    let both = named(&[("allow-all", &allow_all), ("default-deny", &default_deny)]);
    assert_eq!(
        resolve(&check_in, &both)[0].check(&peer("booking-blu")),
        Decision::Allow
    );
}

#[test]
fn target_mesh_and_missing_target_select_every_inbound() {
    assert_eq!(selected(json!({"kind": "Mesh"})), [true, true]);
    assert_eq!(
        selected_with(None, &Tags::new(), &MeshServiceCatalog::default()),
        [true, true]
    );
}

#[test]
fn target_mesh_subset_matches_inbound_tags() {
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {"version": "v1"}})),
        [true, false]
    );
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {"version": "v2"}})),
        [false, true]
    );
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {"version": "v1", "zone": "a"}})),
        [true, false]
    );
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {"version": "v1", "zone": "b"}})),
        [false, false]
    );
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "web-admin"}})),
        [false, true]
    );
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {}})),
        [true, true]
    );
    assert_eq!(selected(json!({"kind": "MeshSubset"})), [true, true]);
    // Dataplane labels are not inbound tags.
    assert_eq!(
        selected(json!({"kind": "MeshSubset", "tags": {"team": "x"}})),
        [false, false]
    );
}

#[test]
fn target_mesh_service_by_name() {
    assert_eq!(
        selected(json!({"kind": "MeshService", "name": "web"})),
        [true, false]
    );
    assert_eq!(
        selected(json!({"kind": "MeshService", "name": "web-admin"})),
        [false, true]
    );
    assert_eq!(
        selected(json!({"kind": "MeshService", "name": "other"})),
        [false, false]
    );
    assert_eq!(selected(json!({"kind": "MeshService"})), [false, false]);
}

#[test]
fn target_mesh_service_by_labels_uses_the_catalog() {
    let catalog = MeshServiceCatalog::new([
        ("web", tags(&[("team", "front")])),
        ("web-admin", tags(&[("team", "ops")])),
        ("db", tags(&[("team", "front")])),
    ]);
    let labels = Tags::new();
    let front = json!({"kind": "MeshService", "labels": {"team": "front"}});
    assert_eq!(
        selected_with(Some(front.clone()), &labels, &catalog),
        [true, false]
    );
    let ops = json!({"kind": "MeshService", "labels": {"team": "ops"}});
    assert_eq!(selected_with(Some(ops), &labels, &catalog), [false, true]);
    let none = json!({"kind": "MeshService", "labels": {"team": "nobody"}});
    assert_eq!(selected_with(Some(none), &labels, &catalog), [false, false]);
    // Name and labels: both must hold.
    let both = json!({"kind": "MeshService", "name": "web-admin", "labels": {"team": "front"}});
    assert_eq!(selected_with(Some(both), &labels, &catalog), [false, false]);
    // Without a catalog, label references select nothing (never reinterpreted).
    assert_eq!(
        selected_with(Some(front), &labels, &MeshServiceCatalog::default()),
        [false, false]
    );
}

#[test]
fn target_mesh_service_subset() {
    let t = |name: &str, v: &str| json!({"kind": "MeshServiceSubset", "name": name, "tags": {"version": v}});
    assert_eq!(selected(t("web", "v1")), [true, false]);
    assert_eq!(selected(t("web", "v2")), [false, false]);
    assert_eq!(selected(t("web-admin", "v2")), [false, true]);
    assert_eq!(
        selected(json!({"kind": "MeshServiceSubset", "name": "web"})),
        [true, false]
    );
    assert_eq!(
        selected(json!({"kind": "MeshServiceSubset", "tags": {"version": "v1"}})),
        [false, false]
    );
}

#[test]
fn target_dataplane_by_name_labels_or_all() {
    assert_eq!(
        selected(json!({"kind": "Dataplane", "name": "dp-1"})),
        [true, true]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "name": "dp-2"})),
        [false, false]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "labels": {"team": "x"}})),
        [true, true]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "labels": {"team": "y"}})),
        [false, false]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "name": "dp-1", "labels": {"team": "y"}})),
        [false, false]
    );
    assert_eq!(selected(json!({"kind": "Dataplane"})), [true, true]);
    // Inbound tags are not Dataplane labels.
    assert_eq!(
        selected(json!({"kind": "Dataplane", "labels": {"version": "v1"}})),
        [false, false]
    );
}

#[test]
fn section_name_picks_one_inbound_by_name_or_port() {
    assert_eq!(
        selected(json!({"kind": "Dataplane", "name": "dp-1", "sectionName": "admin"})),
        [false, true]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "labels": {"team": "x"}, "sectionName": "http"})),
        [true, false]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "sectionName": "8080"})),
        [true, false]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "sectionName": "9090"})),
        [false, true]
    );
    assert_eq!(
        selected(json!({"kind": "Dataplane", "sectionName": "nope"})),
        [false, false]
    );
    assert_eq!(
        selected(json!({"kind": "MeshService", "name": "web", "sectionName": "admin"})),
        [false, false]
    );
}

#[test]
fn target_unknown_kind_other_mesh_and_proxy_types() {
    assert_eq!(
        selected(json!({"kind": "MeshGateway", "name": "web"})),
        [false, false]
    );
    assert_eq!(selected(json!({"name": "web"})), [false, false]);
    assert_eq!(
        selected(json!({"kind": "Mesh", "mesh": "other"})),
        [false, false]
    );
    assert_eq!(
        selected(json!({"kind": "Mesh", "mesh": MESH})),
        [true, true]
    );
    assert_eq!(
        selected(json!({"kind": "Mesh", "proxyTypes": ["Gateway"]})),
        [false, false]
    );
    assert_eq!(
        selected(json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]})),
        [true, true]
    );
}

/// Which of the `callers` get into `web` (inbound of [`service_dp`]) through one policy whose
/// `from` is `from`.
fn callers_allowed(
    from: Value,
    catalog: &MeshServiceCatalog,
    callers: &[PeerIdentity],
) -> Vec<bool> {
    let spec = policy(json!({"kind": "Mesh"}), from, "Allow");
    let policies = [("p".to_owned(), &spec)];
    let dp = service_dp("web");
    let dp = DataplaneRef {
        mesh: MESH,
        name: "dp-1",
        labels: &Tags::new(),
        spec: &dp,
    };
    let authz = PolicyIndex::with_mesh_services(&policies, catalog).resolve(&mtls_on(), &dp);
    let restored: InboundAuthz =
        serde_json::from_str(&serde_json::to_string(&authz[0]).expect("serialise"))
            .expect("deserialise");
    callers
        .iter()
        .map(|c| {
            let d = authz[0].check(c);
            assert_eq!(d, restored.check(c), "serde round trip changed a decision");
            d.is_allowed()
        })
        .collect()
}

fn sample_callers() -> Vec<PeerIdentity> {
    vec![
        peer("orders").with_tag("version", "v1"),
        peer("orders").with_tag("version", "v2"),
        peer("billing")
            .with_tag("version", "v1")
            .with_tag("zone", "a"),
        PeerIdentity::new("other", ["orders"]).with_tag("version", "v1"),
    ]
}

#[test]
fn from_mesh_matches_any_identity_of_the_mesh_only() {
    let c = sample_callers();
    let none = MeshServiceCatalog::default();
    assert_eq!(
        callers_allowed(json!({"kind": "Mesh"}), &none, &c),
        [true, true, true, false]
    );
}

#[test]
fn from_mesh_service_matches_spiffe_service() {
    let c = sample_callers();
    let none = MeshServiceCatalog::default();
    assert_eq!(
        callers_allowed(json!({"kind": "MeshService", "name": "orders"}), &none, &c),
        [true, true, false, false]
    );
    assert_eq!(
        callers_allowed(json!({"kind": "MeshService", "name": "nobody"}), &none, &c),
        [false; 4]
    );
    let catalog = MeshServiceCatalog::new([("billing", tags(&[("team", "money")]))]);
    let by_labels = json!({"kind": "MeshService", "labels": {"team": "money"}});
    assert_eq!(
        callers_allowed(by_labels.clone(), &catalog, &c),
        [false, false, true, false]
    );
    assert_eq!(callers_allowed(by_labels, &none, &c), [false; 4]);
}

#[test]
fn from_mesh_subset_matches_tags_and_service() {
    let c = sample_callers();
    let none = MeshServiceCatalog::default();
    let f = |t: Value| json!({"kind": "MeshSubset", "tags": t});
    assert_eq!(
        callers_allowed(f(json!({"version": "v1"})), &none, &c),
        [true, false, true, false]
    );
    assert_eq!(
        callers_allowed(f(json!({"version": "v1", "zone": "a"})), &none, &c),
        [false, false, true, false]
    );
    assert_eq!(
        callers_allowed(f(json!({"kuma.io/service": "orders"})), &none, &c),
        [true, true, false, false]
    );
    assert_eq!(
        callers_allowed(
            f(json!({"kuma.io/service": "orders", "version": "v2"})),
            &none,
            &c
        ),
        [false, true, false, false]
    );
    assert_eq!(
        callers_allowed(f(json!({})), &none, &c),
        [true, true, true, false]
    );
}

#[test]
fn from_mesh_service_subset_needs_both() {
    let c = sample_callers();
    let none = MeshServiceCatalog::default();
    let f = json!({"kind": "MeshServiceSubset", "name": "orders", "tags": {"version": "v1"}});
    assert_eq!(callers_allowed(f, &none, &c), [true, false, false, false]);
    let no_name = json!({"kind": "MeshServiceSubset", "tags": {"version": "v1"}});
    assert_eq!(callers_allowed(no_name, &none, &c), [false; 4]);
}

#[test]
fn from_unknown_missing_or_foreign_matches_nobody() {
    let c = sample_callers();
    let none = MeshServiceCatalog::default();
    assert_eq!(
        callers_allowed(json!({"kind": "Dataplane", "name": "x"}), &none, &c),
        [false; 4]
    );
    assert_eq!(
        callers_allowed(json!({"kind": "Mesh", "mesh": "other"}), &none, &c),
        [false; 4]
    );
    let spec = mtp(json!({"from": [{"default": {"action": "Allow"}}]}));
    let out = resolve(&service_dp("web"), &named(&[("p", &spec)]));
    assert_eq!(out[0].grant_count(), 0);
}

#[test]
fn missing_or_unknown_action_grants_nothing() {
    let bad = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "allow");
    let missing = mtp(json!({"from": [{"targetRef": {"kind": "Mesh"}}]}));
    let out = resolve(
        &service_dp("web"),
        &named(&[("bad", &bad), ("missing", &missing)]),
    );
    assert_eq!(out[0].check(&peer("x")), Decision::Deny);
}

#[test]
fn allow_wins_over_more_specific_deny() {
    let allow = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Allow");
    let deny = policy(
        json!({"kind": "MeshService", "name": "web"}),
        json!({"kind": "MeshService", "name": "orders"}),
        "Deny",
    );
    // Names chosen so Kuma's "alphabetically first wins" would pick the Deny.
    let ps = named(&[("z-allow", &allow), ("a-deny", &deny)]);
    assert_eq!(
        resolve(&service_dp("web"), &ps)[0].check(&peer("orders")),
        Decision::Allow
    );
    // Within one policy, a later Deny does not undo an earlier Allow either.
    let mixed = mtp(json!({"from": [
        {"targetRef": {"kind": "MeshService", "name": "orders"}, "default": {"action": "Allow"}},
        {"targetRef": {"kind": "MeshService", "name": "orders"}, "default": {"action": "Deny"}},
    ]}));
    assert_eq!(
        resolve(&service_dp("web"), &named(&[("m", &mixed)]))[0].check(&peer("orders")),
        Decision::Allow
    );
}

#[test]
fn shadow_deny_only_when_no_plain_allow_matches() {
    let shadow = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "Mesh"}),
        "AllowWithShadowDeny",
    );
    let allow_orders = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshService", "name": "orders"}),
        "Allow",
    );
    let ps = named(&[("shadow", &shadow), ("allow-orders", &allow_orders)]);
    let authz = &resolve(&service_dp("web"), &ps)[0];
    let v = authz.verdict(&peer("billing"));
    assert_eq!(v.decision, Decision::AllowShadowDeny);
    assert_eq!(v.policies().collect::<Vec<_>>(), ["shadow"]);
    let v = authz.verdict(&peer("orders"));
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.policies().collect::<Vec<_>>(), ["allow-orders"]);
    assert_eq!(
        authz.check(&PeerIdentity::new("other", ["orders"])),
        Decision::Deny
    );

    // Plain Allow and shadow on the same caller: plain decides and is the one reported.
    let allow_all = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Allow");
    let ps = named(&[("shadow", &shadow), ("allow-all", &allow_all)]);
    let authz = &resolve(&service_dp("web"), &ps)[0];
    assert_eq!(
        authz.verdict(&peer("x")).policies().collect::<Vec<_>>(),
        ["allow-all"]
    );
    assert_eq!(authz.check(&peer("x")), Decision::Allow);
}

#[test]
fn redundant_rules_are_pruned_without_changing_decisions() {
    let allow_all = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Allow");
    let allow_orders = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshService", "name": "orders"}),
        "Allow",
    );
    let subset = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "orders", "version": "v1"}}),
        "AllowWithShadowDeny",
    );
    let authz = &resolve(
        &service_dp("web"),
        &named(&[("all", &allow_all), ("o", &allow_orders), ("s", &subset)]),
    )[0];
    assert_eq!(authz.grant_count(), 1);
    assert!(authz.any_in_mesh.is_some());

    let authz = &resolve(
        &service_dp("web"),
        &named(&[("o", &allow_orders), ("s", &subset)]),
    )[0];
    assert_eq!(authz.grant_count(), 1, "{authz:?}");
    assert_eq!(
        authz.check(&peer("orders").with_tag("version", "v1")),
        Decision::Allow
    );
}

#[test]
fn output_is_independent_of_policy_order() {
    let a = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
        "Allow",
    );
    let b = policy(
        json!({"kind": "MeshService", "name": "web"}),
        json!({"kind": "MeshService", "name": "x"}),
        "Allow",
    );
    let c = policy(
        json!({"kind": "Dataplane", "sectionName": "http"}),
        json!({"kind": "MeshService", "name": "x"}),
        "AllowWithShadowDeny",
    );
    let d = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshServiceSubset", "name": "y", "tags": {"k": "v"}}),
        "Allow",
    );
    let forward = named(&[("a", &a), ("b", &b), ("c", &c), ("d", &d)]);
    let backward = named(&[("d", &d), ("c", &c), ("b", &b), ("a", &a)]);
    let dp = two_inbounds();
    let one = resolve(&dp, &forward);
    assert_eq!(one, resolve(&dp, &backward));
    assert_eq!(
        serde_json::to_string(&one).expect("json"),
        serde_json::to_string(&resolve(&dp, &backward)).expect("json")
    );
    // b (Allow) and c (AllowWithShadowDeny) both grant `x` on port 8080: the plain one decides.
    let x = &one[0].services["x"];
    assert!(!x.shadow_deny);
    assert_eq!(one[0].grant_policies(x).collect::<Vec<_>>(), ["b"]);
    let e1 = explain_dataplane(MESH, "dp-1", &Tags::new(), &dp, &refs(&forward));
    assert_eq!(
        e1,
        explain_dataplane(MESH, "dp-1", &Tags::new(), &dp, &refs(&backward))
    );
}

#[test]
fn explain_lists_selecting_policies_with_their_caller_entries() {
    let deny = policy(json!({"kind": "Mesh"}), json!({"kind": "Mesh"}), "Deny");
    let allow = policy(
        json!({"kind": "MeshService", "name": "web-admin"}),
        json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "ops", "team": "sre"}}),
        "Allow",
    );
    let ps = named(&[("default-deny", &deny), ("admin", &allow)]);
    let labels = BTreeMap::new();
    let out = explain_dataplane(MESH, "dp-1", &labels, &two_inbounds(), &refs(&ps));
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].port, out[0].service.as_str()), (8080, "web"));
    let names = |i: usize| {
        out[i]
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(0), ["default-deny"]);
    assert_eq!(names(1), ["admin", "default-deny"]);
    let admin = &out[1].policies[0];
    assert_eq!(admin.from[0].action, Some(Action::Allow));
    assert_eq!(
        admin.from[0].callers,
        [CallerMatcher::Subset {
            services: vec!["ops".into()],
            tags: vec![("team".into(), "sre".into())]
        }]
    );
    assert_eq!(
        out[1].policies[1].from[0].callers,
        [CallerMatcher::AnyInMesh]
    );
    // Explanations exist with mTLS off too: they describe policies, not enforcement.
    let json = serde_json::to_value(&out).expect("json");
    assert_eq!(json[1]["policies"][0]["from"][0]["action"], "Allow");
}

#[test]
fn peer_identity_from_certificate_drives_the_check() {
    let allow = policy(
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshSubset", "tags": {"kuma.io/zone": "zone-1"}}),
        "Allow",
    );
    let authz = &resolve(&service_dp("web"), &named(&[("zone", &allow)]))[0];
    let ok =
        PeerIdentity::from_uri_sans(&["spiffe://default/orders", "kuma://kuma.io/zone/zone-1"])
            .expect("id");
    assert_eq!(authz.check(&ok), Decision::Allow);
    let other_mesh =
        PeerIdentity::from_uri_sans(&["spiffe://prod/orders", "kuma://kuma.io/zone/zone-1"])
            .expect("id");
    assert_eq!(authz.check(&other_mesh), Decision::Deny);
}
