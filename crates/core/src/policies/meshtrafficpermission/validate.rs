//! MeshTrafficPermission checks (Kuma's `validator.go` for the legacy `from` form).
//!
//! Aerie keeps `from` (no deprecation warning) and fully supports MeshService references;
//! the 2.12+ `rules` form needs MeshIdentity, which Aerie does not have yet, so it is refused.

use crate::ValidationError;
use crate::validate::{one_of, targetref};

use super::spec::{FromItem, MeshTrafficPermissionSpec};

/// Kinds allowed in the top-level `spec.targetRef` (which proxies the policy applies to).
const TOP_LEVEL_KINDS: [&str; 5] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Kinds allowed in `spec.from[].targetRef` (which clients a rule is about).
const FROM_KINDS: [&str; 4] = ["Mesh", "MeshSubset", "MeshService", "MeshServiceSubset"];

/// What `default.action` may say.
const ACTIONS: [&str; 3] = ["Allow", "Deny", "AllowWithShadowDeny"];

/// Top-level kinds Kuma deprecates in favour of `Dataplane` with labels. MeshService is
/// deliberately absent: Aerie supports it fully.
const DEPRECATED_TOP_LEVEL_KINDS: [&str; 2] = ["MeshSubset", "MeshServiceSubset"];

/// Refusal of the `rules` form until MeshIdentity exists.
const RULES_UNSUPPORTED: &str =
    "is not supported yet: use 'from' (MeshIdentity does not exist in Aerie yet)";

/// Validates the spec; every field path starts with `spec`.
pub(super) fn validate(spec: &MeshTrafficPermissionSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    let from = spec.from.as_deref().unwrap_or_default();
    let has_rules = spec.rules.as_ref().is_some_and(|r| !r.is_empty());
    let inbound_policy = !from.is_empty() || has_rules;
    if let Some(target_ref) = &spec.target_ref {
        errs.add_prefixed(
            "targetRef",
            targetref::validate(target_ref, &TOP_LEVEL_KINDS, inbound_policy),
        );
    }
    match (from.is_empty(), has_rules) {
        (false, true) => errs.add("", "field 'from' must be empty when 'rules' is defined"),
        (true, false) => errs.add("", "at least one of 'from' or 'rules' has to be defined"),
        _ => {}
    }
    for (i, item) in from.iter().enumerate() {
        errs.add_prefixed(&format!("from[{i}]"), validate_from(item));
    }
    if has_rules {
        errs.add("rules", RULES_UNSUPPORTED);
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// One `from` entry: a client reference and the action to take for it.
fn validate_from(item: &FromItem) -> ValidationError {
    let mut errs = ValidationError::new();
    // A missing targetRef is reported the way an empty one is: its kind must be defined.
    let target_ref = item.target_ref.clone().unwrap_or_default();
    errs.add_prefixed(
        "targetRef",
        targetref::validate(&target_ref, &FROM_KINDS, true),
    );
    match item.default.as_ref().and_then(|d| d.action.as_deref()) {
        None | Some("") => errs.add("default.action", "must be defined"),
        Some(action) if !ACTIONS.contains(&action) => errs.add("default.action", one_of(&ACTIONS)),
        Some(_) => {}
    }
    errs
}

/// Deprecation remarks: Kuma's notice for top-level MeshSubset/MeshServiceSubset.
pub(super) fn warnings(spec: &MeshTrafficPermissionSpec) -> Vec<String> {
    let kind = spec
        .target_ref
        .as_ref()
        .and_then(|t| t.kind.as_deref())
        .unwrap_or("");
    if DEPRECATED_TOP_LEVEL_KINDS.contains(&kind) {
        vec![format!(
            "{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead"
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::test_util::{assert_errors, assert_has_error, assert_valid, parse};

    /// A Universal MTP document with the given `spec:` body (indented by the caller).
    fn mtp(spec: &str) -> String {
        format!("type: MeshTrafficPermission\nname: p\nmesh: default\nspec:\n{spec}")
    }

    #[test]
    fn accepted_forms() {
        for spec in [
            // No targetRef at all: the whole mesh.
            "  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
            // All four `from` kinds and all three actions.
            "  targetRef: {kind: Mesh}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Deny}\n    - targetRef: {kind: MeshSubset, tags: {kuma.io/service: orders}}\n      default: {action: Allow}\n    - targetRef: {kind: MeshService, name: orders}\n      default: {action: AllowWithShadowDeny}\n    - targetRef: {kind: MeshServiceSubset, name: orders, tags: {version: v1}}\n      default: {action: Allow}\n",
            "  targetRef: {kind: MeshSubset, tags: {app: web}}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
            "  targetRef: {kind: MeshService, name: web}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
            "  targetRef: {kind: MeshServiceSubset, name: web, tags: {v: '1'}}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
            "  targetRef: {kind: Dataplane, labels: {app: payments}}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
            // sectionName is fine: a policy with `from` is an inbound policy.
            "  targetRef: {kind: Dataplane, name: dp, sectionName: http}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n",
        ] {
            assert_valid(&mtp(spec));
        }
    }

    #[test]
    fn kubernetes_form_is_checked_the_same_way() {
        assert_errors(
            "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata:\n  name: p\nspec:\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Maybe}\n",
            &[(
                "spec.from[0].default.action",
                "must be one of Allow, Deny, AllowWithShadowDeny",
            )],
        );
    }

    #[test]
    fn neither_from_nor_rules() {
        let expected = [(
            "spec",
            "at least one of 'from' or 'rules' has to be defined",
        )];
        assert_errors(&mtp("  targetRef: {kind: Mesh}\n"), &expected);
        assert_errors(
            &mtp("  targetRef: {kind: Mesh}\n  from: []\n  rules: []\n"),
            &expected,
        );
        assert_errors(
            "type: MeshTrafficPermission\nname: p\nmesh: default\n",
            &expected,
        );
    }

    #[test]
    fn from_and_rules_together() {
        assert_errors(
            &mtp(
                "  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n  rules:\n    - default: {allow: [{spiffeID: {type: Exact, value: 'spiffe://a/b'}}]}\n",
            ),
            &[
                ("spec", "field 'from' must be empty when 'rules' is defined"),
                ("spec.rules", RULES_UNSUPPORTED),
            ],
        );
    }

    #[test]
    fn rules_are_not_supported_yet() {
        assert_errors(
            &mtp(
                "  targetRef: {kind: Mesh}\n  rules:\n    - default: {allow: [{spiffeID: {type: Exact, value: 'spiffe://a/b'}}]}\n",
            ),
            &[(
                "spec.rules",
                "is not supported yet: use 'from' (MeshIdentity does not exist in Aerie yet)",
            )],
        );
    }

    #[test]
    fn action_rules() {
        assert_errors(
            &mtp(
                "  from:\n    - targetRef: {kind: Mesh}\n      default: {}\n    - targetRef: {kind: Mesh}\n    - targetRef: {kind: Mesh}\n      default: {action: allow}\n    - targetRef: {kind: Mesh}\n      default: {action: ''}\n",
            ),
            &[
                ("spec.from[0].default.action", "must be defined"),
                ("spec.from[1].default.action", "must be defined"),
                (
                    "spec.from[2].default.action",
                    "must be one of Allow, Deny, AllowWithShadowDeny",
                ),
                ("spec.from[3].default.action", "must be defined"),
            ],
        );
    }

    #[test]
    fn from_target_ref_rules() {
        assert_errors(
            &mtp(
                "  from:\n    - default: {action: Allow}\n    - targetRef: {kind: Dataplane}\n      default: {action: Allow}\n    - targetRef: {kind: MeshService}\n      default: {action: Allow}\n    - targetRef: {kind: MeshSubset, tags: {a: ''}}\n      default: {action: Allow}\n",
            ),
            &[
                ("spec.from[0].targetRef.kind", "must be defined"),
                (
                    "spec.from[1].targetRef.kind",
                    "value 'Dataplane' is not supported",
                ),
                (
                    "spec.from[2].targetRef",
                    "name or labels must be set when kind is MeshService",
                ),
                (
                    "spec.from[3].targetRef.tags[\"a\"]",
                    "tag value must be non-empty",
                ),
            ],
        );
    }

    #[test]
    fn top_level_target_ref_rules() {
        let from = "  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n";
        assert_errors(
            &mtp(&format!(
                "  targetRef: {{kind: MeshGateway, name: gw}}\n{from}"
            )),
            &[(
                "spec.targetRef.kind",
                "value 'MeshGateway' is not supported",
            )],
        );
        assert_errors(
            &mtp(&format!("  targetRef: {{name: x}}\n{from}")),
            &[("spec.targetRef.kind", "must be defined")],
        );
        assert_has_error(
            &mtp(&format!("  targetRef: {{kind: Mesh, name: x}}\n{from}")),
            "spec.targetRef.name",
            "using name with kind Mesh is not yet supported",
        );
    }

    #[test]
    fn section_name_needs_an_inbound_policy() {
        // Without from/rules the policy is not inbound: both problems are reported.
        assert_errors(
            &mtp("  targetRef: {kind: Dataplane, sectionName: http}\n"),
            &[
                (
                    "spec.targetRef.sectionName",
                    "can only be used with inbound policies",
                ),
                (
                    "spec",
                    "at least one of 'from' or 'rules' has to be defined",
                ),
            ],
        );
    }

    #[test]
    fn deprecation_warnings() {
        let with_kind = |target: &str| {
            parse(&mtp(&format!(
                "  targetRef: {target}\n  from:\n    - targetRef: {{kind: MeshService, name: a}}\n      default: {{action: Allow}}\n"
            )))
        };
        for kind in ["MeshSubset", "MeshServiceSubset"] {
            let r = with_kind(&format!("{{kind: {kind}, name: web}}"));
            assert_eq!(
                crate::validate::warnings(&r),
                vec![format!(
                    "{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead"
                )]
            );
        }
        // MeshService is fully supported here, and `from` is kept: no remark for either.
        for target in [
            "{kind: MeshService, name: web}",
            "{kind: Mesh}",
            "{kind: Dataplane}",
        ] {
            assert!(
                crate::validate::warnings(&with_kind(target)).is_empty(),
                "{target}"
            );
        }
        assert!(crate::validate::warnings(&parse(&mtp("  from: []\n"))).is_empty());
    }
}
