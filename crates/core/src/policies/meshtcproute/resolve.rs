//! What a MeshTCPRoute gives the targetRef engine (`policies/rules/`): its top-level ref and,
//! per `to` entry, Kuma's `To.GetDefault()`: the first rule, or (without rules) a rule
//! sending everything to the entry's own target with weight 1. kuma-dp does not route by
//! MeshTCPRoute yet; the engine's answer serves inspection (`_outbounds/{kri}/_policies`).

use serde_json::{Value, json};

use super::MeshTcpRouteSpec;
use crate::policies::rules::{RulesSource, conf_json};
use crate::spec::TargetRef;

impl RulesSource for MeshTcpRouteSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }

    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.to
            .iter()
            .flatten()
            .map(|t| {
                let conf = match t.rules.as_deref().and_then(<[_]>::first) {
                    Some(rule) => conf_json(rule),
                    None => {
                        let mut backend = conf_json(&t.target_ref.clone().unwrap_or_default());
                        if let Value::Object(b) = &mut backend {
                            b.insert("weight".into(), json!(1));
                        }
                        json!({ "default": { "backendRefs": [backend] } })
                    }
                };
                (t.target_ref.as_ref(), conf)
            })
            .collect()
    }
}

use crate::policies::common::BackendRef;
use crate::policies::rules::{Catalog, DataplaneView, Options, RulesIndex, build_index};
use crate::spec::Tags;

/// A mesh's MeshTCPRoutes, indexed once per round for every proxy's outbounds.
#[derive(Debug, Clone, Default)]
pub struct TcpRouteRules {
    index: RulesIndex,
    empty: bool,
}

impl TcpRouteRules {
    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshTcpRouteSpec)],
        catalog: Catalog,
    ) -> TcpRouteRules {
        TcpRouteRules {
            index: build_index(mesh, policies, catalog, Options::default()),
            empty: policies.is_empty(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Per `networking.outbound`, in order: the backends of the MeshTCPRoute conf that
    /// applies (the most important entry's first rule, or its own target), or `None`.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<Option<Vec<BackendRef>>> {
        if self.empty {
            let n = dp.spec.networking.as_ref().map_or(0, |n| n.outbound.len());
            return vec![None; n];
        }
        self.index
            .resolve(dp)
            .outbounds
            .iter()
            .map(|o| {
                let conf: super::Rule = o.merged.merged().ok().flatten()?;
                conf.default?.backend_refs
            })
            .collect()
    }
}
