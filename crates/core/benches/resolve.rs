//! MeshTrafficPermission resolution at scale: 10,000 dataplanes against 1,000 policies of
//! mixed kinds, indexed ([`PolicyIndex::resolve`]) versus the naive baseline that checks every
//! policy against every inbound ([`PolicyIndex::resolve_scan`]), measured in the same run
//! (absolute figures drift between runs on shared machines; the ratio is what to compare).
//!
//! `cargo bench -p aerie-core --bench resolve` runs the full size. Without `--bench` (e.g.
//! `cargo test --all-targets`) it runs a small smoke size so test runs stay fast.
//!
//! Plain `std::time::Instant`, no framework: each phase runs a few times and the best run is
//! reported, which is the least noisy figure on a shared machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aerie_core::policies::meshtrafficpermission::{
    DataplaneRef, Decision, InboundAuthz, MeshServiceCatalog, PeerIdentity, PolicyIndex,
};
use aerie_core::policies::meshtrafficpermission::{FromItem, MeshTrafficPermissionSpec, MtpConf};
use aerie_core::spec::{DataplaneSpec, Inbound, MeshSpec, Networking, Tags, TargetRef};

const MESH: &str = "default";

/// splitmix64: a tiny deterministic generator, so every run resolves the same inputs.
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
    checks: usize,
}

fn tags(pairs: &[(&str, String)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn tr(kind: &str) -> TargetRef {
    TargetRef {
        kind: Some(kind.to_owned()),
        ..TargetRef::default()
    }
}

fn service(i: usize) -> String {
    format!("svc-{i}")
}

struct Dp {
    name: String,
    labels: Tags,
    spec: DataplaneSpec,
}

/// Dataplanes spread over the services; a third also expose an admin inbound.
fn dataplanes(size: &Size, rng: &mut Rng) -> Vec<Dp> {
    (0..size.dataplanes)
        .map(|j| {
            let svc = j % size.services;
            let mut inbound = vec![Inbound {
                port: 8080,
                name: Some("http".into()),
                tags: tags(&[
                    ("kuma.io/service", service(svc)),
                    ("kuma.io/protocol", "http".into()),
                    ("version", format!("v{}", rng.below(3))),
                    ("zone", format!("zone-{}", rng.below(4))),
                ]),
                ..Inbound::default()
            }];
            if j % 3 == 0 {
                inbound.push(Inbound {
                    port: 9090,
                    name: Some("admin".into()),
                    tags: tags(&[("kuma.io/service", format!("{}-admin", service(svc)))]),
                    ..Inbound::default()
                });
            }
            Dp {
                name: format!("dp-{j}"),
                labels: tags(&[
                    ("team", format!("team-{}", svc % 20)),
                    ("env", ["prod", "staging"][j % 2].into()),
                ]),
                spec: DataplaneSpec {
                    networking: Some(Networking {
                        address: "10.0.0.1".into(),
                        inbound,
                        ..Networking::default()
                    }),
                    ..DataplaneSpec::default()
                },
            }
        })
        .collect()
}

fn from(target: TargetRef, action: &str) -> FromItem {
    FromItem {
        target_ref: Some(target),
        default: Some(MtpConf {
            action: Some(action.into()),
        }),
    }
}

/// A random caller reference: mostly by service name (the seed's style), some subsets, a
/// few mesh-wide and label-based ones.
fn caller(rng: &mut Rng, size: &Size) -> TargetRef {
    let by_name = |rng: &mut Rng| TargetRef {
        name: Some(service(rng.below(size.services))),
        ..tr("MeshService")
    };
    match rng.below(40) {
        0..=27 => by_name(rng),
        28..=31 => TargetRef {
            tags: Some(tags(&[
                ("kuma.io/service", service(rng.below(size.services))),
                ("version", format!("v{}", rng.below(3))),
            ])),
            ..tr("MeshSubset")
        },
        32..=35 => TargetRef {
            name: Some(service(rng.below(size.services))),
            tags: Some(tags(&[("zone", format!("zone-{}", rng.below(4)))])),
            ..tr("MeshServiceSubset")
        },
        36 => tr("Mesh"),
        37 => TargetRef {
            tags: Some(tags(&[("version", format!("v{}", rng.below(3)))])),
            ..tr("MeshSubset")
        },
        38 => TargetRef {
            labels: Some(tags(&[("team", format!("team-{}", rng.below(20)))])),
            ..tr("MeshService")
        },
        _ => by_name(rng),
    }
}

/// Mixed kinds, roughly how a large mesh looks: mostly per-service permissions, a few
/// mesh-wide ones, subsets, Dataplane refs (some with sectionName) and Deny policies.
fn policies(size: &Size, rng: &mut Rng) -> Vec<(String, MeshTrafficPermissionSpec)> {
    (0..size.policies)
        .map(|i| {
            let target = match i % 100 {
                0 if i % 200 == 0 => None,
                0 => Some(tr("Mesh")),
                1..=56 => Some(TargetRef {
                    name: Some(service(rng.below(size.services))),
                    ..tr("MeshService")
                }),
                57..=66 => Some(TargetRef {
                    name: Some(service(rng.below(size.services))),
                    tags: Some(tags(&[("version", format!("v{}", rng.below(3)))])),
                    ..tr("MeshServiceSubset")
                }),
                67..=71 => Some(TargetRef {
                    tags: Some(tags(&[
                        ("version", format!("v{}", rng.below(3))),
                        ("zone", format!("zone-{}", rng.below(4))),
                    ])),
                    ..tr("MeshSubset")
                }),
                72..=76 => Some(TargetRef {
                    tags: Some(tags(&[(
                        "kuma.io/service",
                        service(rng.below(size.services)),
                    )])),
                    ..tr("MeshSubset")
                }),
                77..=86 => Some(TargetRef {
                    name: Some(format!("dp-{}", rng.below(size.dataplanes))),
                    section_name: (i % 2 == 0).then(|| "http".to_owned()),
                    ..tr("Dataplane")
                }),
                87..=91 => Some(TargetRef {
                    labels: Some(tags(&[
                        ("team", format!("team-{}", rng.below(20))),
                        ("env", "prod".into()),
                    ])),
                    ..tr("Dataplane")
                }),
                _ => Some(TargetRef {
                    labels: Some(tags(&[("team", format!("team-{}", rng.below(20)))])),
                    ..tr("MeshService")
                }),
            };
            let entries = 1 + rng.below(3);
            let from = (0..entries)
                .map(|_| {
                    let action = match rng.below(10) {
                        0..=5 => "Allow",
                        6..=7 => "Deny",
                        _ => "AllowWithShadowDeny",
                    };
                    let who = caller(rng, size);
                    // Mesh-wide "allow everyone" would make every table trivial; keep the
                    // mesh-wide policies to Deny and shadow so the tables stay realistic.
                    let action = if target
                        .as_ref()
                        .is_none_or(|t| t.kind.as_deref() == Some("Mesh"))
                        && who.kind.as_deref() == Some("Mesh")
                    {
                        "Deny"
                    } else {
                        action
                    };
                    from(who, action)
                })
                .collect();
            (
                format!("mtp-{i:04}"),
                MeshTrafficPermissionSpec {
                    target_ref: target,
                    from: Some(from),
                    rules: None,
                },
            )
        })
        .collect()
}

fn mtls_on() -> MeshSpec {
    serde_json::from_value(serde_json::json!({
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}
    }))
    .unwrap_or_default()
}

/// Runs `f` `runs` times and returns the best time and the last result.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let start = Instant::now();
    let mut out = black_box(f());
    let mut best = start.elapsed();
    for _ in 1..runs {
        let start = Instant::now();
        let r = black_box(f());
        best = best.min(start.elapsed());
        // Dropping the previous result is not part of the measured work.
        out = r;
    }
    (best, out)
}

fn per(d: Duration, n: usize) -> String {
    let ns = d.as_nanos() / (n.max(1) as u128);
    if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1000.0)
    } else {
        format!("{ns} ns")
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
            checks: 1_000_000,
        }
    } else {
        Size {
            services: 50,
            dataplanes: 200,
            policies: 50,
            runs: 1,
            checks: 1_000,
        }
    };
    let mut rng = Rng(0x00c0_ffee);
    let dps = dataplanes(&size, &mut rng);
    let specs = policies(&size, &mut rng);
    let refs: Vec<(String, &MeshTrafficPermissionSpec)> =
        specs.iter().map(|(n, p)| (n.clone(), p)).collect();
    let catalog = MeshServiceCatalog::new(
        (0..size.services).map(|i| (service(i), tags(&[("team", format!("team-{}", i % 20))]))),
    );
    let mesh = mtls_on();
    let views: Vec<DataplaneRef<'_>> = dps
        .iter()
        .map(|d| DataplaneRef {
            mesh: MESH,
            name: &d.name,
            labels: &d.labels,
            spec: &d.spec,
        })
        .collect();
    let inbounds: usize = dps
        .iter()
        .map(|d| d.spec.networking.as_ref().map_or(0, |n| n.inbound.len()))
        .sum();

    let (t_build, index) = best_of(size.runs, || {
        PolicyIndex::with_mesh_services(&refs, &catalog)
    });
    let (t_indexed, indexed) = best_of(size.runs, || {
        views
            .iter()
            .map(|v| index.resolve(&mesh, v))
            .collect::<Vec<Vec<InboundAuthz>>>()
    });
    let (t_naive, naive) = best_of(size.runs, || {
        views
            .iter()
            .map(|v| index.resolve_scan(&mesh, v))
            .collect::<Vec<Vec<InboundAuthz>>>()
    });
    let agree = indexed == naive;

    // The proxy's per-connection check, over the resolved tables and random callers.
    let tables: Vec<&InboundAuthz> = indexed.iter().flatten().collect();
    let peers: Vec<PeerIdentity> = (0..256)
        .map(|_| {
            let s = rng.below(size.services);
            PeerIdentity::new(MESH, [service(s)])
                .with_tag("version", format!("v{}", rng.below(3)))
                .with_tag("zone", format!("zone-{}", rng.below(4)))
        })
        .collect();
    // A proxy checks its own inbound's table over and over, so tables are checked one at a
    // time against every caller (cache-warm), over a spread of tables.
    let step = (tables.len() / (size.checks / peers.len()).max(1)).max(1);
    let sampled: Vec<&InboundAuthz> = tables.iter().step_by(step).copied().collect();
    let checks = sampled.len() * peers.len();
    let (t_check, allowed) = best_of(size.runs, || {
        sampled
            .iter()
            .map(|t| {
                peers
                    .iter()
                    .filter(|p| t.check(p) != Decision::Deny)
                    .count()
            })
            .sum::<usize>()
    });
    let grants: usize = tables.iter().map(|t| t.grant_count()).sum();

    println!(
        "MeshTrafficPermission resolution ({} mode, best of {} runs)",
        if full { "bench" } else { "smoke" },
        size.runs
    );
    println!(
        "  inputs: {} dataplanes ({inbounds} inbounds), {} policies, {} services",
        size.dataplanes, size.policies, size.services
    );
    println!("  index build:           {:>10.2?}", t_build);
    println!(
        "  indexed resolve total: {:>10.2?}  ({} per dataplane)",
        t_indexed,
        per(t_indexed, size.dataplanes)
    );
    println!(
        "  naive resolve total:   {:>10.2?}  ({} per dataplane)",
        t_naive,
        per(t_naive, size.dataplanes)
    );
    println!(
        "  speed-up naive/indexed: {:.1}x   (results identical: {agree})",
        t_naive.as_secs_f64() / t_indexed.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    println!(
        "  tables: {grants} grants over {} inbounds ({:.1} per inbound)",
        tables.len(),
        grants as f64 / tables.len().max(1) as f64
    );
    println!(
        "  check: {checks} calls on {} tables in {:.2?} ({} per check, {allowed} allowed)",
        sampled.len(),
        t_check,
        per(t_check, checks)
    );
    if !agree {
        eprintln!("indexed and naive resolution disagree");
        std::process::exit(1);
    }
}
