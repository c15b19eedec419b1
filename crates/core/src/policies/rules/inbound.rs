//! What applies to an inbound (`rules/inbound/inboundrules.go`, `rules/inbound/sort.go`,
//! and the legacy `rules.BuildFromRules`).
//!
//! The policies selecting the inbound are taken in priority order. Each contributes its
//! `rules[]` entries; a policy without `rules` contributes its `from[]` entries instead when
//! the kind is `IsFromAsRules`, as catch-all rules (their targetRefs are not looked at).
//! A `rules[]` entry with `matches` becomes one rule per match; rules are then stably sorted
//! by match: SPIFFE ID `Exact`, `Prefix`, other SPIFFE match, SNI, none. The catch-all rules,
//! merged in order, are what applies to every caller (`MatchesAllIncomingTraffic`).
//!
//! Independently, every `from[]` entry is kept for the legacy per-caller view
//! ([`super::InboundRules::from_conf`]), which MeshTrafficPermission-style kinds use.

use super::index::{Id, RulesIndex};
use super::order::compare_matches;
use super::outbound::merged;
use super::types::{FromEntry, InboundRule, InboundRules, Origin};
use crate::spec::Inbound;

pub(crate) fn inbound_rules(index: &RulesIndex, inbound: &Inbound, ids: &[Id]) -> InboundRules {
    let policies: Vec<_> = ids.iter().filter_map(|&id| index.policy(id)).collect();
    let mut rules: Vec<InboundRule> = Vec::new();
    for p in &policies {
        let origin = |i: usize| Origin {
            policy: p.name.clone(),
            index: i,
        };
        if !p.rules.is_empty() {
            for r in &p.rules {
                if r.matches.is_empty() {
                    rules.push(InboundRule {
                        matches: None,
                        conf: r.conf.clone(),
                        origin: origin(r.index),
                    });
                }
                for m in &r.matches {
                    rules.push(InboundRule {
                        matches: Some(m.clone()),
                        conf: r.conf.clone(),
                        origin: origin(r.index),
                    });
                }
            }
        } else if index.options.from_as_rules {
            for f in &p.from {
                rules.push(InboundRule {
                    matches: None,
                    conf: f.conf.clone(),
                    origin: origin(f.index),
                });
            }
        }
    }
    rules.sort_by(|a, b| compare_matches(a.matches.as_ref(), b.matches.as_ref()));
    let conf = merged(
        rules
            .iter()
            .filter(|r| r.matches.is_none())
            .map(|r| (&r.origin.policy, r.origin.index, &*r.conf))
            .collect(),
    );
    let from = policies
        .iter()
        .flat_map(|p| {
            p.from.iter().map(|f| FromEntry {
                target_ref: f.target_ref.clone(),
                subset: f.subset.clone(),
                conf: f.conf.clone(),
                origin: Origin {
                    policy: p.name.clone(),
                    index: f.index,
                },
            })
        })
        .collect();
    InboundRules {
        port: inbound.port,
        name: inbound.name.clone(),
        policies: policies.iter().map(|p| p.name.to_string()).collect(),
        rules,
        conf,
        from,
    }
}
