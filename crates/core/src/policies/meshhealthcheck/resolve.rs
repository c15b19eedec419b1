//! What a MeshHealthCheck gives the targetRef engine (`policies/rules/`): its top-level ref
//! and `to` entries with their confs. kuma-dp does not probe hosts yet; the engine's answer
//! serves inspection (`_outbounds/{kri}/_policies`).

use serde_json::Value;

use super::MeshHealthCheckSpec;
use crate::policies::rules::{RulesSource, conf_json};
use crate::spec::TargetRef;

impl RulesSource for MeshHealthCheckSpec {
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
}
