//! What a MeshRateLimit gives the targetRef engine (`policies/rules/`): its top-level
//! ref, `to`, `from` and `rules` entries with their confs. kuma-dp does not rate-limit
//! yet; the engine's answer serves inspection (`_inbounds/{kri}/_policies`,
//! `_outbounds/{kri}/_policies`).

use serde_json::Value;

use super::MeshRateLimitSpec;
use crate::policies::rules::{RulesSource, conf_json};
use crate::spec::TargetRef;

impl RulesSource for MeshRateLimitSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }

    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.to
            .iter()
            .flatten()
            .map(|t| (t.target_ref.as_ref(), conf_json(&t.default)))
            .collect()
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
                let matches = r.matches.iter().flatten().map(conf_json).collect();
                (matches, conf_json(&r.default))
            })
            .collect()
    }
}
