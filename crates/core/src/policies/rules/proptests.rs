//! Property tests over small random universes (few services, tags, labels and names, so
//! policies and Dataplanes actually collide).

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use super::tests::{D, P, index_with};
use super::*;
use crate::spec::Tags;

const SERVICES: [&str; 3] = ["a", "b", "c"];
const VERSIONS: [&str; 2] = ["v1", "v2"];
const KEYS: [&str; 3] = ["idleTimeout", "connectionTimeout", "http"];

fn catalog() -> Catalog {
    let ms = |name: &str, team: &str| CatalogResource {
        kind: ResourceKind::MeshService,
        name: name.into(),
        labels: Tags::from([("team".to_owned(), team.to_owned())]),
        ports: vec![
            Port {
                port: 80,
                name: Some("http".into()),
            },
            Port {
                port: 81,
                name: None,
            },
        ],
        target_ref: None,
    };
    Catalog::new(vec![ms("a", "x"), ms("b", "y"), ms("c", "x")])
}

/// A conf: a few members, sometimes nested, sometimes `null`.
fn arb_conf() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (0u8..4).prop_map(|n| json!(format!("{n}s"))),
        Just(Value::Null),
        (0u8..3).prop_map(|n| json!({"requestTimeout": format!("{n}s")})),
        Just(json!(["x"])),
    ];
    proptest::collection::btree_map(select(&KEYS[..]), leaf, 0..=3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn arb_top_level() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"kind": "Mesh"}))),
        Just(Some(json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}))),
        Just(Some(json!({"kind": "Mesh", "proxyTypes": ["Gateway"]}))),
        select(&VERSIONS[..])
            .prop_map(|v| Some(json!({"kind": "MeshSubset", "tags": {"version": v}}))),
        select(&SERVICES[..]).prop_map(|s| Some(json!({"kind": "MeshService", "name": s}))),
        (select(&SERVICES[..]), select(&VERSIONS[..])).prop_map(|(s, v)| Some(
            json!({"kind": "MeshServiceSubset", "name": s, "tags": {"version": v}})
        )),
        Just(Some(json!({"kind": "Dataplane"}))),
        select(&["dp-1", "dp-2"][..]).prop_map(|n| Some(json!({"kind": "Dataplane", "name": n}))),
        select(&["x", "y"][..])
            .prop_map(|t| Some(json!({"kind": "Dataplane", "labels": {"team": t}}))),
        select(&["http", "8081", "9"][..])
            .prop_map(|s| Some(json!({"kind": "Dataplane", "sectionName": s}))),
    ]
}

fn arb_to_ref() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"kind": "Mesh"})),
        select(&SERVICES[..]).prop_map(|s| json!({"kind": "MeshService", "name": s})),
        (select(&SERVICES[..]), select(&["http", "81"][..]))
            .prop_map(|(s, p)| json!({"kind": "MeshService", "name": s, "sectionName": p})),
        select(&["x", "y"][..]).prop_map(|t| json!({"kind": "MeshService", "labels": {"team": t}})),
        select(&SERVICES[..])
            .prop_map(|s| json!({"kind": "MeshSubset", "tags": {"kuma.io/service": s}})),
    ]
}

fn arb_from_ref() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"kind": "Mesh"})),
        select(&SERVICES[..]).prop_map(|s| json!({"kind": "MeshService", "name": s})),
        select(&VERSIONS[..]).prop_map(|v| json!({"kind": "MeshSubset", "tags": {"version": v}})),
    ]
}

fn arb_labels() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(select(&["global", "zone"][..])),
        proptest::option::of(select(&["producer", "consumer"][..])),
    )
        .prop_map(|(origin, role)| {
            let mut l = serde_json::Map::new();
            if let Some(o) = origin {
                l.insert("kuma.io/origin".into(), json!(o));
            }
            if let Some(r) = role {
                l.insert("kuma.io/policy-role".into(), json!(r));
                l.insert("k8s.kuma.io/namespace".into(), json!("ns"));
            }
            Value::Object(l)
        })
}

/// A policy without its name: top-level ref, labels, to, from, rules.
fn arb_policy_body() -> impl Strategy<Value = Value> {
    let entries = |r: BoxedStrategy<Value>| {
        proptest::collection::vec(
            (r, arb_conf()).prop_map(|(t, d)| json!({"targetRef": t, "default": d})),
            0..=2,
        )
    };
    (
        arb_top_level(),
        arb_labels(),
        entries(arb_to_ref().boxed()),
        entries(arb_from_ref().boxed()),
        proptest::collection::vec(arb_conf().prop_map(|d| json!({"default": d})), 0..=1),
    )
        .prop_map(|(top, labels, to, from, rules)| {
            let mut p = json!({"labels": labels, "to": to, "from": from, "rules": rules});
            if let Some(t) = top {
                p["targetRef"] = t;
            }
            p
        })
}

/// Policies with distinct names (drawn so that name order and input order differ).
fn arb_policies(max: usize) -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec((select(&["p", "q", "r"][..]), arb_policy_body()), 0..=max).prop_map(
        |v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (prefix, mut body))| {
                    body["name"] = json!(format!("{prefix}-{i}"));
                    body
                })
                .collect()
        },
    )
}

fn arb_dataplane() -> impl Strategy<Value = D> {
    let inbound = (
        select(&SERVICES[..]),
        select(&VERSIONS[..]),
        proptest::option::of(Just("http")),
        8080u32..8083,
    )
        .prop_map(|(s, v, name, port)| {
            let mut i = json!({"port": port, "tags": {"kuma.io/service": s, "version": v}});
            if let Some(n) = name {
                i["name"] = json!(n);
            }
            i
        });
    let outbound = prop_oneof![
        select(&SERVICES[..]).prop_map(|s| json!({"port": 10001, "tags": {"kuma.io/service": s}})),
        (select(&SERVICES[..]), select(&[80u32, 81][..])).prop_map(|(s, p)| json!(
            {"port": 10002, "backendRef": {"kind": "MeshService", "name": s, "port": p}}
        )),
    ];
    (
        select(&["dp-1", "dp-2"][..]),
        proptest::option::of(select(&["x", "y"][..])),
        proptest::option::of(select(&["global", "zone"][..])),
        proptest::collection::vec(inbound, 1..=3),
        proptest::collection::vec(outbound, 0..=3),
        any::<bool>(),
    )
        .prop_map(|(name, team, origin, inbounds, outbounds, ns)| {
            let mut labels = serde_json::Map::new();
            if let Some(t) = team {
                labels.insert("team".into(), json!(t));
            }
            if let Some(o) = origin {
                labels.insert("kuma.io/origin".into(), json!(o));
            }
            if ns {
                labels.insert("k8s.kuma.io/namespace".into(), json!("ns"));
            }
            D::new(json!({"name": name, "labels": labels, "networking": {
                "address": "1.1.1.1", "inbound": inbounds, "outbound": outbounds}}))
        })
}

fn options() -> impl Strategy<Value = Options> {
    any::<bool>().prop_map(|from_as_rules| Options {
        from_as_rules,
        include_shadow: false,
    })
}

fn build(ps: &[P], options: Options) -> RulesIndex {
    index_with(ps, catalog(), options)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The buckets only change speed: every inbound gets exactly the policies a full scan
    /// finds.
    #[test]
    fn index_agrees_with_a_full_scan(ps in arb_policies(8), d in arb_dataplane()) {
        let ps: Vec<P> = ps.into_iter().map(P::new).collect();
        let ix = build(&ps, Options::default());
        let view = d.view();
        let facts = ix.facts(&view);
        let dp_ids = ix.dataplane_candidates(&facts);
        for inbound in d.spec.networking.as_ref().map(|n| n.inbound.as_slice()).unwrap_or_default() {
            prop_assert_eq!(ix.inbound_ids(&facts, &dp_ids, inbound), ix.scan_inbound(&facts, inbound));
        }
    }

    /// Sorting makes the result independent of the order policies are handed over in.
    #[test]
    fn result_is_independent_of_input_order(
        ps in arb_policies(6),
        d in arb_dataplane(),
        opts in options(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = ps.clone();
        // A deterministic shuffle from the seed.
        let n = shuffled.len();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = usize::try_from(s >> 33).unwrap_or(0) % (i + 1);
            shuffled.swap(i, j);
        }
        let a: Vec<P> = ps.into_iter().map(P::new).collect();
        let b: Vec<P> = shuffled.into_iter().map(P::new).collect();
        prop_assert_eq!(build(&a, opts).resolve(&d.view()), build(&b, opts).resolve(&d.view()));
    }

    /// One mesh-wide policy applies to every inbound and outbound, its conf unchanged (less
    /// its `null`s).
    #[test]
    fn a_single_mesh_wide_policy_applies_everywhere_unchanged(
        d in arb_dataplane(),
        to in arb_conf(),
        rule in arb_conf(),
        explicit in any::<bool>(),
    ) {
        let mut p = json!({"name": "only", "to": [{"targetRef": {"kind": "Mesh"}, "default": to}],
                           "rules": [{"default": rule}]});
        if explicit {
            p["targetRef"] = json!({"kind": "Mesh"});
        }
        let ps = vec![P::new(p)];
        let rules = build(&ps, Options::default()).resolve(&d.view());
        prop_assert_eq!(&rules.policies, &vec!["only".to_owned()]);
        for inbound in &rules.inbounds {
            prop_assert_eq!(&inbound.policies, &vec!["only".to_owned()]);
            prop_assert_eq!(&inbound.conf.conf, &Some(strip_nulls(&rule)));
        }
        for outbound in &rules.outbounds {
            prop_assert_eq!(&outbound.merged.conf, &Some(strip_nulls(&to)));
            prop_assert_eq!(outbound.merged.policies(), vec!["only"]);
        }
    }

    /// A policy whose top-level targetRef selects nothing changes nothing, whatever its
    /// entries.
    #[test]
    fn a_policy_selecting_nothing_changes_nothing(
        ps in arb_policies(5),
        mut extra in arb_policy_body(),
        nothing in select(vec![
            json!({"kind": "MeshService", "name": "nobody"}),
            json!({"kind": "MeshSubset", "tags": {"version": "v9"}}),
            json!({"kind": "Dataplane", "name": "nobody"}),
            json!({"kind": "Dataplane", "sectionName": "nothing"}),
            json!({"kind": "MeshGateway", "name": "gw"}),
            json!({"kind": "MeshHTTPRoute", "name": "absent"}),
            json!({"kind": "Unknown"}),
        ]),
        d in arb_dataplane(),
        opts in options(),
    ) {
        extra["name"] = json!("a-extra");
        extra["targetRef"] = nothing;
        let base: Vec<P> = ps.iter().cloned().map(P::new).collect();
        let mut more: Vec<P> = ps.into_iter().map(P::new).collect();
        more.push(P::new(extra));
        prop_assert_eq!(build(&base, opts).resolve(&d.view()), build(&more, opts).resolve(&d.view()));
    }

    /// Every inbound's and outbound's contributing policies are among those applying to the
    /// Dataplane, and inbound policy lists are in the Dataplane's order.
    #[test]
    fn contributors_apply_to_the_dataplane(ps in arb_policies(8), d in arb_dataplane(), opts in options()) {
        let ps: Vec<P> = ps.into_iter().map(P::new).collect();
        let rules = build(&ps, opts).resolve(&d.view());
        let position = |name: &str| rules.policies.iter().position(|p| p == name);
        for inbound in &rules.inbounds {
            let positions: Vec<Option<usize>> = inbound.policies.iter().map(|p| position(p)).collect();
            prop_assert!(positions.iter().all(Option::is_some));
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
            for name in inbound.conf.policies() {
                prop_assert!(inbound.policies.iter().any(|p| p == name));
            }
        }
        for outbound in &rules.outbounds {
            for name in outbound.merged.policies() {
                prop_assert!(position(name).is_some());
            }
        }
    }

    /// Merge patch: applying the same patch twice is applying it once, and a null-free
    /// patch applied to `{}` is the patch.
    #[test]
    fn merge_patch_is_idempotent(target in arb_conf(), patch in arb_conf()) {
        let mut once = target.clone();
        merge_patch(&mut once, &patch);
        let mut twice = once.clone();
        merge_patch(&mut twice, &patch);
        prop_assert_eq!(&once, &twice);
        let mut fresh = json!({});
        merge_patch(&mut fresh, &strip_nulls(&patch));
        prop_assert_eq!(fresh, strip_nulls(&patch));
    }

    /// Merging is order-sensitive only where confs overlap: the highest-priority conf's
    /// top-level scalars and lists always survive, and a key set by one conf only keeps its
    /// value.
    #[test]
    fn merge_confs_last_wins(confs in proptest::collection::vec(arb_conf(), 1..=4)) {
        let confs: Vec<Value> = confs.iter().map(strip_nulls).collect();
        let merged = merge_confs(&confs).unwrap();
        let last = confs.last().unwrap();
        for (k, v) in last.as_object().unwrap() {
            if !v.is_object() {
                prop_assert_eq!(&merged[k], v);
            }
        }
        for key in KEYS {
            let setters: Vec<&Value> = confs.iter().filter_map(|c| c.get(key)).collect();
            if setters.len() == 1 {
                prop_assert_eq!(&merged[key], setters[0]);
            }
            if setters.is_empty() {
                prop_assert!(merged.get(key).is_none());
            }
        }
    }
}
