//! Property tests over small random universes (few services, tags and names, so policies,
//! dataplanes and callers actually collide).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;

use super::*;
use crate::spec::{DataplaneSpec, Inbound, MeshSpec, Networking, SERVICE_TAG, Tags, TargetRef};

const MESH: &str = "default";
const SERVICES: [&str; 3] = ["a", "b", "c"];
const VALUES: [&str; 2] = ["1", "2"];

fn mtls_on() -> MeshSpec {
    serde_json::from_value(serde_json::json!({
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}
    }))
    .unwrap_or_default()
}

fn catalog() -> MeshServiceCatalog {
    let team = |t: &str| Tags::from([("team".to_owned(), t.to_owned())]);
    MeshServiceCatalog::new([("a", team("x")), ("b", team("y")), ("c", team("x"))])
}

/// Tags drawn from `version`/`zone` and, sometimes, `kuma.io/service`.
fn arb_tags(max: usize) -> impl Strategy<Value = Tags> {
    let pair = prop_oneof![
        (select(&["version", "zone"][..]), select(&VALUES[..]))
            .prop_map(|(k, v)| (k.to_owned(), v.to_owned())),
        select(&SERVICES[..]).prop_map(|s| (SERVICE_TAG.to_owned(), s.to_owned())),
    ];
    proptest::collection::vec(pair, 0..=max).prop_map(|v| v.into_iter().collect())
}

fn arb_labels() -> impl Strategy<Value = Tags> {
    proptest::collection::btree_map(
        Just("team".to_owned()),
        select(&["x", "y"][..]).prop_map(str::to_owned),
        0..=1,
    )
}

fn opt_string(options: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(select(options).prop_map(str::to_owned))
}

fn target_ref(kind: &str) -> TargetRef {
    TargetRef {
        kind: Some(kind.to_owned()),
        ..TargetRef::default()
    }
}

/// Top-level targetRefs of every kind, plus missing and unknown ones.
fn arb_target() -> impl Strategy<Value = Option<TargetRef>> {
    let section = opt_string(&["http", "admin", "8080", "9090"]);
    let kind = prop_oneof![
        Just(target_ref("Mesh")),
        arb_tags(2).prop_map(|t| TargetRef {
            tags: Some(t),
            ..target_ref("MeshSubset")
        }),
        select(&SERVICES[..]).prop_map(|s| TargetRef {
            name: Some(s.to_owned()),
            ..target_ref("MeshService")
        }),
        arb_labels().prop_map(|l| TargetRef {
            labels: Some(l),
            ..target_ref("MeshService")
        }),
        (select(&SERVICES[..]), arb_tags(1)).prop_map(|(s, t)| TargetRef {
            name: Some(s.to_owned()),
            tags: Some(t),
            ..target_ref("MeshServiceSubset")
        }),
        (
            opt_string(&["dp-0", "dp-1"]),
            proptest::option::of(arb_labels())
        )
            .prop_map(|(name, labels)| TargetRef {
                name,
                labels,
                ..target_ref("Dataplane")
            }),
        Just(target_ref("Bogus")),
    ];
    proptest::option::weighted(
        0.9,
        (kind, section).prop_map(|(mut t, s)| {
            t.section_name = s;
            t
        }),
    )
}

/// `from` targetRefs of every kind, plus missing, unknown and other-mesh ones.
fn arb_from_ref() -> impl Strategy<Value = Option<TargetRef>> {
    let kind = prop_oneof![
        Just(target_ref("Mesh")),
        Just(TargetRef {
            mesh: Some("other".to_owned()),
            ..target_ref("Mesh")
        }),
        arb_tags(2).prop_map(|t| TargetRef {
            tags: Some(t),
            ..target_ref("MeshSubset")
        }),
        select(&SERVICES[..]).prop_map(|s| TargetRef {
            name: Some(s.to_owned()),
            ..target_ref("MeshService")
        }),
        arb_labels().prop_map(|l| TargetRef {
            labels: Some(l),
            ..target_ref("MeshService")
        }),
        (select(&SERVICES[..]), arb_tags(1)).prop_map(|(s, t)| TargetRef {
            name: Some(s.to_owned()),
            tags: Some(t),
            ..target_ref("MeshServiceSubset")
        }),
        Just(target_ref("Dataplane")),
    ];
    proptest::option::weighted(0.95, kind)
}

fn arb_action() -> impl Strategy<Value = Option<String>> {
    opt_string(&["Allow", "Deny", "AllowWithShadowDeny", "Bogus"])
}

fn arb_policy_with(
    action: impl Strategy<Value = Option<String>>,
) -> impl Strategy<Value = MeshTrafficPermissionSpec> {
    let item = (arb_from_ref(), action).prop_map(|(target_ref, action)| FromItem {
        target_ref,
        default: Some(MtpConf { action }),
    });
    (arb_target(), proptest::collection::vec(item, 0..3)).prop_map(|(target_ref, from)| {
        MeshTrafficPermissionSpec {
            target_ref,
            from: Some(from),
            rules: None,
        }
    })
}

fn arb_policy() -> impl Strategy<Value = MeshTrafficPermissionSpec> {
    arb_policy_with(arb_action())
}

fn arb_policies() -> impl Strategy<Value = Vec<(String, MeshTrafficPermissionSpec)>> {
    proptest::collection::vec(arb_policy(), 0..6).prop_map(|ps| {
        ps.into_iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p))
            .collect()
    })
}

#[derive(Debug, Clone)]
struct Dp {
    name: String,
    labels: Tags,
    spec: DataplaneSpec,
}

fn arb_dp() -> impl Strategy<Value = Dp> {
    let inbound = (
        select(&[8080u32, 9090][..]),
        opt_string(&["http", "admin"]),
        select(&SERVICES[..]),
        arb_tags(2),
    )
        .prop_map(|(port, name, service, mut tags)| {
            tags.insert(SERVICE_TAG.to_owned(), service.to_owned());
            Inbound {
                port,
                name,
                tags,
                ..Inbound::default()
            }
        });
    (
        select(&["dp-0", "dp-1"][..]),
        arb_labels(),
        proptest::collection::vec(inbound, 1..3),
        any::<bool>(),
    )
        .prop_map(|(name, labels, inbound, gateway)| Dp {
            name: name.to_owned(),
            labels,
            spec: DataplaneSpec {
                networking: Some(Networking {
                    inbound,
                    gateway: gateway.then(|| serde_json::json!({"type": "DELEGATED"})),
                    ..Networking::default()
                }),
                ..DataplaneSpec::default()
            },
        })
}

fn arb_peer() -> impl Strategy<Value = PeerIdentity> {
    let tags = proptest::collection::btree_map(
        select(&["version", "zone"][..]).prop_map(str::to_owned),
        proptest::collection::btree_set(select(&VALUES[..]).prop_map(str::to_owned), 1..=2),
        0..=2,
    );
    (
        prop_oneof![4 => Just(MESH), 1 => Just("other")],
        proptest::collection::btree_set(select(&SERVICES[..]).prop_map(str::to_owned), 1..=2),
        tags,
    )
        .prop_map(|(mesh, services, tags)| PeerIdentity {
            mesh: mesh.to_owned(),
            services,
            tags,
        })
}

fn arb_peers() -> impl Strategy<Value = Vec<PeerIdentity>> {
    proptest::collection::vec(arb_peer(), 1..8)
}

fn resolve(
    mesh: &MeshSpec,
    dp: &Dp,
    ps: &[(String, MeshTrafficPermissionSpec)],
) -> Vec<InboundAuthz> {
    let refs: Vec<(String, &MeshTrafficPermissionSpec)> =
        ps.iter().map(|(n, p)| (n.clone(), p)).collect();
    let dp = DataplaneRef {
        mesh: MESH,
        name: &dp.name,
        labels: &dp.labels,
        spec: &dp.spec,
    };
    PolicyIndex::with_mesh_services(&refs, &catalog()).resolve(mesh, &dp)
}

fn decisions(tables: &[InboundAuthz], peers: &[PeerIdentity]) -> Vec<Decision> {
    tables
        .iter()
        .flat_map(|t| peers.iter().map(|p| t.check(p)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Adding a policy that only allows (plainly or with shadow deny) never takes access
    /// away, and never turns a plain Allow into a shadow one.
    #[test]
    fn adding_an_allow_never_removes_access(
        ps in arb_policies(),
        extra in arb_policy_with(select(&["Allow", "AllowWithShadowDeny"][..]).prop_map(|a| Some(a.to_owned()))),
        name in select(&["p0", "extra", "zzz"][..]),
        dp in arb_dp(),
        peers in arb_peers(),
    ) {
        let before = decisions(&resolve(&mtls_on(), &dp, &ps), &peers);
        let mut more = ps.clone();
        more.push((name.to_owned(), extra));
        let after = decisions(&resolve(&mtls_on(), &dp, &more), &peers);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(a >= b, "{b:?} became {a:?}");
        }
    }

    /// Adding a Deny-only policy changes nothing at all (Allow wins; Deny is the default).
    #[test]
    fn adding_a_deny_never_removes_access(
        ps in arb_policies(),
        extra in arb_policy_with(Just(Some("Deny".to_owned()))),
        name in select(&["p0", "extra", "a"][..]),
        dp in arb_dp(),
        peers in arb_peers(),
    ) {
        let before = resolve(&mtls_on(), &dp, &ps);
        let mut more = ps.clone();
        more.push((name.to_owned(), extra));
        let after = resolve(&mtls_on(), &dp, &more);
        prop_assert_eq!(decisions(&before, &peers), decisions(&after, &peers));
        prop_assert_eq!(before, after);
    }

    /// With mTLS on and no permission granting anything, nobody gets in.
    #[test]
    fn mtls_on_without_allows_nothing_is_allowed(
        ps in proptest::collection::vec(arb_policy_with(opt_string(&["Deny", "Bogus"])), 0..5),
        dp in arb_dp(),
        peers in arb_peers(),
    ) {
        let ps: Vec<_> = ps.into_iter().enumerate().map(|(i, p)| (format!("p{i}"), p)).collect();
        for tables in [resolve(&mtls_on(), &dp, &ps), resolve(&mtls_on(), &dp, &[])] {
            prop_assert!(decisions(&tables, &peers).iter().all(|d| *d == Decision::Deny));
            prop_assert!(tables.iter().all(|t| t.check_unauthenticated() == Decision::Deny));
        }
    }

    /// With mTLS off everyone gets in, whatever the policies.
    #[test]
    fn mtls_off_allows_everything(ps in arb_policies(), dp in arb_dp(), peers in arb_peers()) {
        let tables = resolve(&MeshSpec::default(), &dp, &ps);
        prop_assert!(decisions(&tables, &peers).iter().all(|d| *d == Decision::Allow));
        prop_assert!(tables.iter().all(|t| t.check_unauthenticated() == Decision::Allow));
    }

    /// The index only changes speed: same tables as checking every policy.
    #[test]
    fn index_agrees_with_scan(ps in arb_policies(), dp in arb_dp()) {
        let refs: Vec<(String, &MeshTrafficPermissionSpec)> = ps.iter().map(|(n, p)| (n.clone(), p)).collect();
        let index = PolicyIndex::with_mesh_services(&refs, &catalog());
        let dp = DataplaneRef { mesh: MESH, name: &dp.name, labels: &dp.labels, spec: &dp.spec };
        prop_assert_eq!(index.resolve(&mtls_on(), &dp), index.resolve_scan(&mtls_on(), &dp));
    }

    /// Policy order in the input does not matter; the serialised table checks the same.
    #[test]
    fn deterministic_and_serialisable(ps in arb_policies(), seed in any::<u64>(), dp in arb_dp(), peers in arb_peers()) {
        let mut shuffled = ps.clone();
        // A cheap deterministic shuffle driven by the seed.
        let len = shuffled.len();
        if len > 1 {
            for i in 0..len {
                let j = usize::try_from((seed >> (i % 60)) % (len as u64)).unwrap_or(0);
                shuffled.swap(i, j);
            }
        }
        let one = resolve(&mtls_on(), &dp, &ps);
        prop_assert_eq!(&one, &resolve(&mtls_on(), &dp, &shuffled));
        let json = serde_json::to_string(&one).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Vec<InboundAuthz> = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decisions(&one, &peers), decisions(&back, &peers));
    }

    /// A caller is allowed iff some selecting policy has a granting `from` matching it
    /// (an oracle written straight from the rule, independent of the table layout).
    #[test]
    fn decision_matches_the_rule(ps in arb_policies(), dp in arb_dp(), peers in arb_peers()) {
        let tables = resolve(&mtls_on(), &dp, &ps);
        let refs: Vec<(String, &MeshTrafficPermissionSpec)> = ps.iter().map(|(n, p)| (n.clone(), p)).collect();
        let dpr = DataplaneRef { mesh: MESH, name: &dp.name, labels: &dp.labels, spec: &dp.spec };
        let explained = PolicyIndex::with_mesh_services(&refs, &catalog()).explain(&dpr);
        for (table, matched) in tables.iter().zip(&explained) {
            for peer in &peers {
                let mut best = Decision::Deny;
                for from in matched.policies.iter().flat_map(|p| &p.from) {
                    let hit = peer.mesh == MESH && from.callers.iter().any(|c| oracle_matches(c, peer));
                    let d = match from.action {
                        Some(Action::Allow) if hit => Decision::Allow,
                        Some(Action::AllowWithShadowDeny) if hit => Decision::AllowShadowDeny,
                        _ => Decision::Deny,
                    };
                    best = best.max(d);
                }
                prop_assert_eq!(table.check(peer), best, "{:?}", peer);
            }
        }
    }

    /// Parsing arbitrary SANs never panics; generated identities survive a round trip.
    #[test]
    fn identity_parsing_is_total(sans in proptest::collection::vec(".{0,40}", 0..4), peer in arb_peer()) {
        let refs: Vec<&str> = sans.iter().map(String::as_str).collect();
        let _ = PeerIdentity::from_uri_sans(&refs);
        let own = peer.to_uri_sans();
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        prop_assert_eq!(PeerIdentity::from_uri_sans(&own), Some(peer));
    }
}

fn oracle_matches(c: &CallerMatcher, peer: &PeerIdentity) -> bool {
    match c {
        CallerMatcher::AnyInMesh => true,
        CallerMatcher::Service { name } => peer.services.contains(name),
        CallerMatcher::Subset { services, tags } => {
            services.iter().all(|s| peer.services.contains(s))
                && tags
                    .iter()
                    .all(|(k, v)| peer.tags.get(k).is_some_and(|vs| vs.contains(v)))
        }
    }
}

#[test]
fn catalog_names_are_sorted_and_unique() {
    let c = MeshServiceCatalog::new([("b", Tags::new()), ("a", Tags::new()), ("b", Tags::new())]);
    assert_eq!(c.names_matching(&BTreeMap::new()), ["a", "b"]);
}
