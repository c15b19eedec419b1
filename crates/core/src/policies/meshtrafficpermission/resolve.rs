//! What a MeshTrafficPermission gives the generic targetRef engine (`policies/rules/`): its
//! top-level ref, `from` entries (conf `{action}`) and `rules` entries. The proxy's
//! authorization comes from this policy's own index (`index.rs`); the engine's answer serves
//! inspection, where Kuma lists a MeshTrafficPermission on an inbound through its `rules`
//! only (the kind is not `IsFromAsRules`).

use serde_json::Value;

use super::MeshTrafficPermissionSpec;
use crate::policies::rules::{RulesSource, conf_json};
use crate::spec::TargetRef;

impl RulesSource for MeshTrafficPermissionSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }

    fn caller_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.from
            .iter()
            .flatten()
            .map(|f| (f.target_ref.as_ref(), conf_json(&f.default)))
            .collect()
    }

    fn rule_entries(&self) -> Vec<(Vec<Value>, Value)> {
        self.rules
            .iter()
            .flatten()
            .map(|r| {
                let matches = r
                    .get("matches")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                (matches, r.get("default").cloned().unwrap_or(Value::Null))
            })
            .collect()
    }
}
