//! What a MeshHTTPRoute gives the targetRef engine (`policies/rules/`): its top-level ref
//! only, so the engine knows which proxies a route applies to (and what a policy whose
//! top-level ref is this route selects). Its `to` rules are not handed over: Kuma merges
//! them by matches and host names (`mergeValuesByKey`, `mergeValues`), which the engine's
//! JSON merge patch does not do, so a route contributes no outbound conf here.

use super::MeshHttpRouteSpec;
use crate::policies::rules::RulesSource;
use crate::spec::TargetRef;

impl RulesSource for MeshHttpRouteSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }
}
