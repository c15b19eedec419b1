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
