//! Every resource type is reachable the way its descriptor (`aerie_core::DESCRIPTORS`) says:
//! through REST (its collection path), `/_resources`, and kumactl (its plural, singular and
//! short names). KDS's side is checked in `aerie-kds` (`apply::tests`).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_core::{DESCRIPTORS, Scope};
use aerie_e2e::{ControlPlane, Kumactl};

#[test]
fn every_type_is_reachable_through_rest_and_kumactl_as_described() {
    let cp = ControlPlane::start();
    let kumactl = Kumactl::for_cp(&cp);
    let listed = cp.get("/_resources").json();
    let listed = listed["resources"].as_array().unwrap();
    assert_eq!(listed.len(), DESCRIPTORS.len());
    for d in DESCRIPTORS.iter() {
        let path = match d.scope {
            Scope::Mesh => format!("/meshes/default/{}", d.plural),
            Scope::Global => format!("/{}", d.plural),
        };
        let r = cp.get(&path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        assert!(r.json()["items"].is_array(), "GET {path}: {}", r.body);
        let entry = listed
            .iter()
            .find(|e| e["name"] == d.name)
            .unwrap_or_else(|| panic!("{} missing from /_resources", d.name));
        assert_eq!(entry["path"], d.plural);
        assert_eq!(entry["kumactlListArg"], d.cli_plural);
        // Kuma's ResourceTypeDescription requires both.
        assert_eq!(entry["shortName"], d.short_name, "{}", d.name);
        assert_eq!(
            entry["includeInFederation"],
            d.rtype.include_in_federation(),
            "{}",
            d.name
        );
        assert_eq!(
            entry["policy"].is_object(),
            d.policy_order.is_some(),
            "{}",
            d.name
        );
        if d.policy_order.is_some() {
            let form = d.policy_form;
            assert_eq!(
                (
                    &entry["policy"]["hasToTargetRef"],
                    &entry["policy"]["hasFromTargetRef"],
                    &entry["policy"]["hasRulesTargetRef"],
                    &entry["policy"]["isFromAsRules"],
                ),
                (
                    &serde_json::json!(form.to),
                    &serde_json::json!(form.from),
                    &serde_json::json!(form.rules),
                    &serde_json::json!(form.from_as_rules),
                ),
                "{}",
                d.name
            );
        } else {
            assert!(entry.get("policy").is_none(), "{}: {entry}", d.name);
        }
        for arg in [d.cli_plural, d.cli_singular]
            .into_iter()
            .chain(d.short_names.iter().copied())
        {
            let mut args = vec!["get", arg];
            if d.scope == Scope::Mesh {
                args.extend(["--mesh", "default"]);
            }
            let out = kumactl.run(&args);
            assert!(
                out.status.success(),
                "kumactl get {arg}: {}",
                aerie_e2e::text(&out.stderr)
            );
        }
    }
}
