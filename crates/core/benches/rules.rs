//! The generic targetRef engine (`policies::rules`) at scale: one policy kind with 1,000
//! policies of mixed top-level kinds and to/from/rules entries, 1,000 MeshServices, 10,000
//! Dataplanes with 2 inbounds and 10 outbounds each (half `kuma.io/service` tags, half
//! `backendRef`s). Reports the index build and the resolution of every Dataplane. A sixth of
//! the policies are mesh-wide, so each Dataplane matches about 250 policies and every conf
//! merges dozens of entries: a stress case, far above a usual mesh.
//!
//! `cargo bench -p aerie-core --bench rules` runs the full size; without `--bench` (e.g.
//! `cargo test --all-targets`) a small smoke size. Plain `Instant`, best of a few runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aerie_core::policies::rules::{
    Catalog, CatalogResource, DataplaneRules, DataplaneView, Entry, Options, PolicyItem, Port,
    ResourceKind, RuleItem, RulesIndex,
};
use aerie_core::spec::{DataplaneSpec, Tags, TargetRef};
use serde_json::{Value, json};

const MESH: &str = "default";

/// splitmix64: deterministic inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

struct Size {
    services: usize,
    dataplanes: usize,
    policies: usize,
    runs: usize,
}

struct Policy {
    name: String,
    labels: Tags,
    target_ref: Option<TargetRef>,
    to: Vec<(TargetRef, Value)>,
    from: Vec<(TargetRef, Value)>,
    rules: Vec<Value>,
}

struct Dp {
    name: String,
    labels: Tags,
    spec: DataplaneSpec,
}

fn tr(v: Value) -> TargetRef {
    serde_json::from_value(v).unwrap_or_default()
}

fn service(i: usize) -> String {
    format!("svc-{i}")
}

fn conf(rng: &mut Rng) -> Value {
    json!({"connectionTimeout": format!("{}s", rng.below(10)),
           "http": {"requestTimeout": format!("{}s", rng.below(10))}})
}

fn policies(size: &Size, rng: &mut Rng) -> Vec<Policy> {
    (0..size.policies)
        .map(|i| {
            let svc = service(rng.below(size.services));
            let target_ref = match rng.below(6) {
                0 => None,
                1 => Some(tr(json!({"kind": "MeshService", "name": svc}))),
                2 => Some(tr(json!({"kind": "MeshSubset", "tags": {"version": "v1"}}))),
                3 => Some(tr(json!({"kind": "Dataplane", "labels": {"team": format!("team-{}", rng.below(20))}}))),
                4 => Some(tr(json!({"kind": "Dataplane", "name": format!("dp-{}", rng.below(size.dataplanes))}))),
                _ => Some(tr(json!({"kind": "MeshServiceSubset", "name": svc, "tags": {"version": "v2"}}))),
            };
            let to = (0..rng.below(3))
                .map(|_| {
                    let dest = service(rng.below(size.services));
                    let r = match rng.below(4) {
                        0 => json!({"kind": "Mesh"}),
                        1 => json!({"kind": "MeshService", "name": dest}),
                        2 => json!({"kind": "MeshService", "name": dest, "sectionName": "http"}),
                        _ => json!({"kind": "MeshService", "labels": {"team": format!("team-{}", rng.below(20))}}),
                    };
                    (tr(r), conf(rng))
                })
                .collect();
            let from = (0..rng.below(2))
                .map(|_| (tr(json!({"kind": "Mesh"})), conf(rng)))
                .collect();
            let rules = (0..rng.below(2)).map(|_| conf(rng)).collect();
            Policy {
                name: format!("policy-{i}"),
                labels: Tags::new(),
                target_ref,
                to,
                from,
                rules,
            }
        })
        .collect()
}

fn dataplanes(size: &Size, rng: &mut Rng) -> Vec<Dp> {
    (0..size.dataplanes)
        .map(|i| {
            let svc = service(rng.below(size.services));
            let outbound: Vec<Value> = (0..10)
                .map(|k| {
                    let dest = service(rng.below(size.services));
                    if k % 2 == 0 {
                        json!({"port": 10000 + k, "tags": {"kuma.io/service": dest}})
                    } else {
                        json!({"port": 10000 + k, "backendRef": {"kind": "MeshService", "name": dest, "port": 80}})
                    }
                })
                .collect();
            let spec = serde_json::from_value(json!({"networking": {
                "address": "10.0.0.1",
                "inbound": [
                    {"port": 8080, "tags": {"kuma.io/service": svc, "version": format!("v{}", 1 + rng.below(2))}},
                    {"port": 9090, "name": "admin", "tags": {"kuma.io/service": format!("{svc}-admin")}}],
                "outbound": outbound}}))
            .unwrap_or_default();
            Dp {
                name: format!("dp-{i}"),
                labels: Tags::from([("team".to_owned(), format!("team-{}", rng.below(20)))]),
                spec,
            }
        })
        .collect()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let v = black_box(f());
        best = best.min(start.elapsed());
        out = Some(v);
    }
    match out {
        Some(v) => (best, v),
        None => unreachable!("runs.max(1) >= 1"),
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full {
        Size {
            services: 1_000,
            dataplanes: 10_000,
            policies: 1_000,
            runs: 3,
        }
    } else {
        Size {
            services: 50,
            dataplanes: 200,
            policies: 50,
            runs: 1,
        }
    };
    let mut rng = Rng(0x5eed);
    let ps = policies(&size, &mut rng);
    let dps = dataplanes(&size, &mut rng);
    let catalog = Catalog::new(
        (0..size.services)
            .map(|i| CatalogResource {
                kind: ResourceKind::MeshService,
                name: service(i),
                labels: Tags::from([("team".to_owned(), format!("team-{}", i % 20))]),
                ports: vec![Port {
                    port: 80,
                    name: Some("http".into()),
                }],
                target_ref: None,
            })
            .collect(),
    );
    let items: Vec<PolicyItem<'_>> = ps
        .iter()
        .map(|p| PolicyItem {
            name: &p.name,
            labels: &p.labels,
            target_ref: p.target_ref.as_ref(),
            to: p
                .to
                .iter()
                .map(|(t, d)| Entry::new(Some(t), Some(d)))
                .collect(),
            from: p
                .from
                .iter()
                .map(|(t, d)| Entry::new(Some(t), Some(d)))
                .collect(),
            rules: p
                .rules
                .iter()
                .map(|d| RuleItem::new(None, Some(d)))
                .collect(),
        })
        .collect();
    let options = Options {
        from_as_rules: true,
        include_shadow: false,
    };
    let (t_build, index) = best_of(size.runs, || {
        RulesIndex::new(MESH, &items, catalog.clone(), options)
    });
    let (t_resolve, all) = best_of(size.runs, || {
        dps.iter()
            .map(|d| {
                index.resolve(&DataplaneView {
                    mesh: MESH,
                    name: &d.name,
                    labels: &d.labels,
                    spec: &d.spec,
                })
            })
            .collect::<Vec<DataplaneRules>>()
    });
    let matched: usize = all.iter().map(|r| r.policies.len()).sum();
    let confs = all
        .iter()
        .flat_map(|r| &r.outbounds)
        .filter(|o| o.merged.conf.is_some())
        .count();
    println!(
        "rules ({}): {} policies, {} dataplanes: index {:?}, resolve all {:?} ({:.1} us/dataplane); {} policy matches, {} outbounds with a conf",
        if full { "bench" } else { "smoke" },
        size.policies,
        size.dataplanes,
        t_build,
        t_resolve,
        t_resolve.as_secs_f64() * 1e6 / size.dataplanes as f64,
        matched,
        confs
    );
}
