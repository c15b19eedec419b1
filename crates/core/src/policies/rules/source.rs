//! What a policy body gives the engine, so each policy's rules are built by one function
//! ([`build_index`]) instead of one hand-written conversion per policy.

use serde_json::Value;

use super::catalog::Catalog;
use super::index::RulesIndex;
use super::types::{Entry, Options, PolicyItem, RuleItem};
use crate::spec::{Tags, TargetRef};

/// A policy body in the engine's terms: its top-level reference and its `to`, `from` and
/// `rules` entries with their confs as JSON (merged as JSON merge patches).
pub trait RulesSource {
    fn top_ref(&self) -> Option<&TargetRef>;
    /// `to[]`: each entry's reference and conf.
    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        Vec::new()
    }
    /// `from[]` (the callers): each entry's reference and conf.
    fn caller_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        Vec::new()
    }
    /// `rules[]`: each rule's matches and conf.
    fn rule_entries(&self) -> Vec<(Vec<Value>, Value)> {
        Vec::new()
    }
}

/// A conf as JSON; one that cannot be written (it always can) reads as no conf.
pub fn conf_json<T: serde::Serialize>(conf: &T) -> Value {
    serde_json::to_value(conf).unwrap_or(Value::Null)
}

/// A reference and its conf.
type RefConfs<'s> = Vec<(Option<&'s TargetRef>, Value)>;
/// One policy's `to`, `from` and `rules` entries, owned while the index is built.
type Owned<'s> = (RefConfs<'s>, RefConfs<'s>, Vec<(Vec<Value>, Value)>);

/// Indexes a mesh's policies of one kind, given as (name, labels, body).
pub fn build_index<S: RulesSource>(
    mesh: &str,
    policies: &[(&str, &Tags, &S)],
    catalog: Catalog,
    options: Options,
) -> RulesIndex {
    // The engine borrows the confs: they live here while the index is built.
    let owned: Vec<Owned<'_>> = policies
        .iter()
        .map(|(_, _, s)| (s.to_entries(), s.caller_entries(), s.rule_entries()))
        .collect();
    let items: Vec<PolicyItem<'_>> = policies
        .iter()
        .zip(&owned)
        .map(|((name, labels, spec), (to, from, rules))| PolicyItem {
            name,
            labels,
            target_ref: spec.top_ref(),
            to: to.iter().map(|(r, c)| Entry::new(*r, Some(c))).collect(),
            from: from.iter().map(|(r, c)| Entry::new(*r, Some(c))).collect(),
            rules: rules
                .iter()
                .map(|(m, c)| RuleItem::new(Some(m), Some(c)))
                .collect(),
        })
        .collect();
    RulesIndex::new(mesh, &items, catalog, options)
}

/// The `inspect` view of one listener's policy of some kind: the contributing policies
/// (lowest priority first), the merged conf as written, and `effective`, what the proxy
/// enforces from it.
pub fn explain_json<T: serde::Serialize>(merged: &super::types::Merged, effective: &T) -> Value {
    serde_json::json!({
        "policies": merged.policies(),
        "conf": merged.conf.clone().unwrap_or(Value::Null),
        "effective": conf_json(effective),
    })
}

/// `impl RulesSource` for a policy body of Kuma's usual shape: `targetRef`, and the parts
/// named after it, each read the same way in every policy: `to` and `from` (each entry's
/// `targetRef` and `default`), `rules` (each rule's `matches` and `default`).
macro_rules! rules_source {
    ($spec:ty $(; $part:ident)*) => {
        impl $crate::policies::rules::RulesSource for $spec {
            fn top_ref(&self) -> Option<&$crate::spec::TargetRef> {
                self.target_ref.as_ref()
            }
            $($crate::policies::rules::rules_source!(@$part);)*
        }
    };
    (@to) => {
        fn to_entries(&self) -> Vec<(Option<&$crate::spec::TargetRef>, serde_json::Value)> {
            self.to
                .iter()
                .flatten()
                .map(|t| (t.target_ref.as_ref(), $crate::policies::rules::conf_json(&t.default)))
                .collect()
        }
    };
    (@from) => {
        fn caller_entries(&self) -> Vec<(Option<&$crate::spec::TargetRef>, serde_json::Value)> {
            self.from
                .iter()
                .flatten()
                .map(|f| (f.target_ref.as_ref(), $crate::policies::rules::conf_json(&f.default)))
                .collect()
        }
    };
    (@rules) => {
        fn rule_entries(&self) -> Vec<(Vec<serde_json::Value>, serde_json::Value)> {
            self.rules
                .iter()
                .flatten()
                .map(|r| {
                    let matches = r
                        .matches
                        .iter()
                        .flatten()
                        .map($crate::policies::rules::conf_json)
                        .collect();
                    (matches, $crate::policies::rules::conf_json(&r.default))
                })
                .collect()
        }
    };
}
pub(crate) use rules_source;
