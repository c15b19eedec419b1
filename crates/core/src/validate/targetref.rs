//! Checks for a policy `targetRef` (Kuma's `ValidateTargetRef`) and for tag maps.
//!
//! Paths are relative to the reference (`kind`, `tags["k"]`, `""` for the whole ref);
//! callers prefix them with `add_prefixed`.

use crate::ValidationError;
use crate::spec::{Tags, TargetRef};

use super::{key_path, one_of};

/// Values `proxyTypes` may hold.
const PROXY_TYPES: [&str; 2] = ["Sidecar", "Gateway"];

/// What a tag map's values may look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagValues {
    /// Concrete tags (`[a-zA-Z0-9.-_:]`), as on inbounds and in MeshSubset.
    Plain,
    /// Selectors: also `/` and the wildcard `*` (MeshServiceSubset).
    Selector,
}

/// Validates one reference against the kinds the caller supports.
///
/// `inbound_policy` says whether the policy configures inbound traffic (has `from` or
/// `rules`): only then may a Dataplane ref name an inbound with `sectionName`.
pub(crate) fn validate(r: &TargetRef, kinds: &[&str], inbound_policy: bool) -> ValidationError {
    validate_with(
        r,
        kinds,
        RefOpts {
            inbound_policy,
            ..RefOpts::default()
        },
    )
}

/// Options of one target-reference check (Kuma's `ValidateTargetRefOpts`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RefOpts {
    /// The policy configures inbound traffic: a Dataplane ref may use `sectionName`.
    pub inbound_policy: bool,
    /// A MeshGateway ref may select listeners by `tags` (system policies of some types).
    pub gateway_listener_tags_allowed: bool,
    /// Names accepted although they break the name rules (Kuma's `AllowedInvalidNames`,
    /// e.g. a route's `kuma.io/unresolved-backend`).
    pub allowed_invalid_names: &'static [&'static str],
}

/// [`validate`] with every option of Kuma's `ValidateTargetRef`.
pub(crate) fn validate_with(r: &TargetRef, kinds: &[&str], opts: RefOpts) -> ValidationError {
    let inbound_policy = opts.inbound_policy;
    let mut errs = ValidationError::new();
    let kind = r.kind.as_deref().unwrap_or("");
    if kind.is_empty() {
        errs.add("kind", "must be defined");
        return errs;
    }
    if !kinds.contains(&kind) {
        errs.add("kind", format!("value '{kind}' is not supported"));
        return errs;
    }
    let mut check = Check {
        r,
        kind,
        errs,
        allowed_invalid_names: opts.allowed_invalid_names,
    };
    match kind {
        "Mesh" => check.mesh(),
        "Dataplane" => check.dataplane(inbound_policy),
        "MeshSubset" => check.mesh_subset(),
        "MeshService" => check.mesh_service(),
        "MeshServiceSubset" => check.mesh_service_subset(),
        "MeshGateway" => check.mesh_gateway(opts.gateway_listener_tags_allowed),
        "MeshHTTPRoute" => check.named_or_labelled(
            true,
            "either labels or name and namespace must be specified",
        ),
        "MeshExternalService" => {
            check.named_or_labelled(false, "either labels or name must be specified")
        }
        // Kuma checks nothing more for MeshMultiZoneService.
        _ => {}
    }
    check.errs
}

/// One reference being checked: the per-kind rules share the "forbidden field" helpers.
struct Check<'a> {
    r: &'a TargetRef,
    kind: &'a str,
    errs: ValidationError,
    allowed_invalid_names: &'static [&'static str],
}

impl Check<'_> {
    /// `kind: Mesh` selects everything: no narrowing fields, and `name` is reserved.
    fn mesh(&mut self) {
        if is_set(&self.r.name) {
            self.errs
                .add("name", "using name with kind Mesh is not yet supported");
        }
        self.forbid_mesh();
        self.forbid_tags();
        self.forbid_labels();
        self.forbid_namespace();
        self.forbid_section_name();
        if self.r.proxy_types.as_ref().is_some_and(Vec::is_empty) {
            self.errs.add(
                "proxyTypes",
                "must be undefined or have at least one element",
            );
        }
        self.proxy_type_values();
    }

    /// `kind: Dataplane` selects proxies by name/namespace or by labels, not both.
    fn dataplane(&mut self, inbound_policy: bool) {
        self.forbid_tags();
        self.forbid_mesh();
        self.forbid_proxy_types();
        self.labels_exclude_name("either labels or name and namespace must be specified");
        if !inbound_policy && is_set(&self.r.section_name) {
            self.errs
                .add("sectionName", "can only be used with inbound policies");
        }
    }

    /// `kind: MeshSubset` selects proxies by tags.
    fn mesh_subset(&mut self) {
        self.forbid("name", is_set(&self.r.name));
        self.forbid_mesh();
        if let Some(tags) = &self.r.tags {
            self.errs
                .add_prefixed("tags", validate_tags(tags, TagValues::Plain));
        }
        self.forbid_labels();
        self.forbid_namespace();
        self.forbid_section_name();
        self.proxy_type_values();
    }

    /// `kind: MeshService` names one service, or selects services by labels.
    fn mesh_service(&mut self) {
        self.name_characters();
        self.forbid_mesh();
        self.forbid_tags();
        self.forbid_proxy_types();
        let has_labels = self.r.labels.as_ref().is_some_and(|l| !l.is_empty());
        if !has_labels && !is_set(&self.r.name) {
            self.errs
                .add("", "name or labels must be set when kind is MeshService");
        }
        self.labels_exclude_name("either labels or name and namespace must be specified");
        if has_labels && is_set(&self.r.section_name) {
            self.errs.add(
                "sectionName",
                "sectionName should not be combined with labels",
            );
        }
    }

    /// `kind: MeshServiceSubset` names one service and narrows it with tag selectors.
    fn mesh_service_subset(&mut self) {
        if !is_set(&self.r.name) {
            self.errs
                .add("name", "must be set when kind is MeshServiceSubset");
        }
        self.name_characters();
        self.forbid_mesh();
        self.forbid_proxy_types();
        if let Some(tags) = &self.r.tags {
            self.errs
                .add_prefixed("tags", validate_tags(tags, TagValues::Selector));
        }
        self.forbid_labels();
        self.forbid_namespace();
        self.forbid_section_name();
    }

    /// `kind: MeshGateway` names one gateway; only where allowed may `tags` select some of
    /// its listeners.
    fn mesh_gateway(&mut self, listener_tags_allowed: bool) {
        if !is_set(&self.r.name) {
            self.errs
                .add("name", "must be set when kind is MeshGateway");
        }
        self.name_characters();
        self.forbid_mesh();
        self.forbid_proxy_types();
        if let Some(tags) = &self.r.tags {
            self.errs
                .add_prefixed("tags", validate_tags(tags, TagValues::Selector));
        }
        if !listener_tags_allowed {
            self.forbid_tags();
        }
        self.forbid_labels();
        self.forbid_namespace();
        self.forbid_section_name();
    }

    /// MeshHTTPRoute and MeshExternalService: one object by name, or several by labels.
    fn named_or_labelled(&mut self, forbid_section_name_first: bool, labels_message: &str) {
        self.name_characters();
        self.forbid_mesh();
        self.forbid_tags();
        self.forbid_proxy_types();
        if forbid_section_name_first {
            self.forbid_section_name();
        }
        let has_labels = self.r.labels.as_ref().is_some_and(|l| !l.is_empty());
        if !has_labels && !is_set(&self.r.name) {
            self.errs.add(
                "",
                format!("name or labels must be set when kind is {}", self.kind),
            );
        }
        self.labels_exclude_name(labels_message);
        if !forbid_section_name_first {
            self.forbid_section_name();
        }
    }

    fn forbid(&mut self, field: &str, set: bool) {
        if set {
            self.errs
                .add(field, format!("must not be set with kind {}", self.kind));
        }
    }

    fn forbid_mesh(&mut self) {
        self.forbid("mesh", is_set(&self.r.mesh));
    }

    fn forbid_tags(&mut self) {
        self.forbid("tags", self.r.tags.as_ref().is_some_and(|t| !t.is_empty()));
    }

    fn forbid_labels(&mut self) {
        self.forbid(
            "labels",
            self.r.labels.as_ref().is_some_and(|l| !l.is_empty()),
        );
    }

    fn forbid_namespace(&mut self) {
        self.forbid("namespace", is_set(&self.r.namespace));
    }

    fn forbid_section_name(&mut self) {
        self.forbid("sectionName", is_set(&self.r.section_name));
    }

    fn forbid_proxy_types(&mut self) {
        self.forbid(
            "proxyTypes",
            self.r.proxy_types.as_ref().is_some_and(|p| !p.is_empty()),
        );
    }

    /// Labels select many objects, name/namespace one: mixing them is ambiguous.
    fn labels_exclude_name(&mut self, message: &str) {
        let has_labels = self.r.labels.as_ref().is_some_and(|l| !l.is_empty());
        if has_labels && (is_set(&self.r.name) || is_set(&self.r.namespace)) {
            self.errs.add("labels", message);
        }
    }

    /// Service names: `^[0-9a-z.\-_]*$` (Kuma's `NameCharacterSet`).
    fn name_characters(&mut self) {
        let name = self.r.name.as_deref().unwrap_or("");
        if self.allowed_invalid_names.contains(&name) {
            return;
        }
        let ok = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !ok {
            self.errs.add(
                "name",
                "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'.",
            );
        }
    }

    /// Each listed proxy type must be one the mesh knows.
    fn proxy_type_values(&mut self) {
        for (i, t) in self.r.proxy_types.iter().flatten().enumerate() {
            if !PROXY_TYPES.contains(&t.as_str()) {
                self.errs
                    .add(format!("proxyTypes[{i}]"), one_of(&PROXY_TYPES));
            }
        }
    }
}

/// A string field counts as set when present and non-empty (Go's zero value is "").
fn is_set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

/// Kuma's tag-map checks (`ValidateTags` / `ValidateSelector`), in sorted key order.
/// Fields are relative to the map: `""` for the map itself, `["key"]` for one entry.
pub(crate) fn validate_tags(tags: &Tags, values: TagValues) -> ValidationError {
    let mut errs = ValidationError::new();
    for (key, value) in tags {
        let at_key = key_path("", key);
        if key.is_empty() {
            errs.add("", "tag name must be non-empty");
        }
        if !key.bytes().all(|b| is_tag_char(b) || b == b'/') {
            errs.add(
                at_key.as_str(),
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            );
        }
        if value.is_empty() {
            errs.add(at_key.as_str(), "tag value must be non-empty");
        }
        match values {
            TagValues::Plain if !value.bytes().all(is_tag_char) => errs.add(
                at_key.as_str(),
                "tag value must consist of alphanumeric characters, dots, dashes and underscores",
            ),
            TagValues::Selector
                if value != "*" && !value.bytes().all(|b| is_tag_char(b) || b == b'/') =>
            {
                errs.add(
                    at_key.as_str(),
                    "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\"",
                )
            }
            _ => {}
        }
    }
    errs
}

/// `[a-zA-Z0-9.\-_:]`: the characters every tag name and value may use.
fn is_tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".-_:".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&str; 5] = [
        "Mesh",
        "MeshSubset",
        "MeshService",
        "MeshServiceSubset",
        "Dataplane",
    ];

    fn target_ref(yaml: &str) -> TargetRef {
        let v = crate::format::parse_yaml_value(yaml).expect("yaml");
        serde_json::from_value(v).expect("targetRef")
    }

    fn check(yaml: &str) -> Vec<(String, String)> {
        check_with(yaml, true)
    }

    fn check_with(yaml: &str, inbound: bool) -> Vec<(String, String)> {
        validate(&target_ref(yaml), &ALL, inbound)
            .violations
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect()
    }

    #[test]
    fn valid_references() {
        for yaml in [
            "kind: Mesh",
            "kind: Mesh\nproxyTypes: [Sidecar, Gateway]",
            "kind: Dataplane",
            "kind: Dataplane\nlabels: {app: web}",
            "kind: Dataplane\nname: dp-1\nnamespace: ns\nsectionName: http",
            "kind: MeshSubset",
            "kind: MeshSubset\ntags: {}",
            "kind: MeshSubset\ntags: {kuma.io/service: web_ns_svc_80, version: 'v1'}",
            "kind: MeshService\nname: check-in-api-blu",
            "kind: MeshService\nname: web\nnamespace: ns\nsectionName: http",
            "kind: MeshService\nlabels: {team: a}",
            "kind: MeshServiceSubset\nname: web\ntags: {version: '*', zone: a/b}",
        ] {
            assert!(check(yaml).is_empty(), "{yaml}: {:?}", check(yaml));
        }
    }

    #[test]
    fn kind_is_required_and_stops_the_check() {
        assert_eq!(
            check("name: x\nmesh: other"),
            pairs(&[("kind", "must be defined")])
        );
        assert_eq!(check("kind: ''"), pairs(&[("kind", "must be defined")]));
    }

    #[test]
    fn unsupported_kind_stops_the_check() {
        assert_eq!(
            check("kind: MeshGateway\nmesh: x"),
            pairs(&[("kind", "value 'MeshGateway' is not supported")])
        );
        let only_mesh = validate(&target_ref("kind: Dataplane"), &["Mesh"], true);
        assert_eq!(
            only_mesh.violations[0].message,
            "value 'Dataplane' is not supported"
        );
    }

    #[test]
    fn mesh_kind_forbids_narrowing() {
        assert_eq!(
            check(
                "kind: Mesh\nname: a\nmesh: m\ntags: {a: b}\nlabels: {a: b}\nnamespace: ns\nsectionName: s\nproxyTypes: []"
            ),
            pairs(&[
                ("name", "using name with kind Mesh is not yet supported"),
                ("mesh", "must not be set with kind Mesh"),
                ("tags", "must not be set with kind Mesh"),
                ("labels", "must not be set with kind Mesh"),
                ("namespace", "must not be set with kind Mesh"),
                ("sectionName", "must not be set with kind Mesh"),
                (
                    "proxyTypes",
                    "must be undefined or have at least one element"
                ),
            ])
        );
        assert_eq!(
            check("kind: Mesh\nproxyTypes: [Sidecar, Ingress]"),
            pairs(&[("proxyTypes[1]", "must be one of Sidecar, Gateway")])
        );
    }

    #[test]
    fn dataplane_kind_rules() {
        assert_eq!(
            check(
                "kind: Dataplane\ntags: {a: b}\nmesh: m\nproxyTypes: [Sidecar]\nlabels: {a: b}\nname: dp"
            ),
            pairs(&[
                ("tags", "must not be set with kind Dataplane"),
                ("mesh", "must not be set with kind Dataplane"),
                ("proxyTypes", "must not be set with kind Dataplane"),
                (
                    "labels",
                    "either labels or name and namespace must be specified"
                ),
            ])
        );
        assert_eq!(
            check("kind: Dataplane\nlabels: {a: b}\nnamespace: ns"),
            pairs(&[(
                "labels",
                "either labels or name and namespace must be specified"
            )])
        );
        assert_eq!(
            check_with("kind: Dataplane\nsectionName: http", false),
            pairs(&[("sectionName", "can only be used with inbound policies")])
        );
        assert!(check_with("kind: Dataplane\nsectionName: http", true).is_empty());
    }

    #[test]
    fn mesh_subset_kind_rules() {
        assert_eq!(
            check(
                "kind: MeshSubset\nname: a\nmesh: m\nlabels: {a: b}\nnamespace: ns\nsectionName: s"
            ),
            pairs(&[
                ("name", "must not be set with kind MeshSubset"),
                ("mesh", "must not be set with kind MeshSubset"),
                ("labels", "must not be set with kind MeshSubset"),
                ("namespace", "must not be set with kind MeshSubset"),
                ("sectionName", "must not be set with kind MeshSubset"),
            ])
        );
    }

    #[test]
    fn mesh_subset_tag_rules() {
        assert_eq!(
            check("kind: MeshSubset\ntags: {'': x, 'a b': v, empty: '', slash: a/b, star: '*'}"),
            pairs(&[
                ("tags", "tag name must be non-empty"),
                (
                    "tags[\"a b\"]",
                    "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"
                ),
                ("tags[\"empty\"]", "tag value must be non-empty"),
                (
                    "tags[\"slash\"]",
                    "tag value must consist of alphanumeric characters, dots, dashes and underscores"
                ),
                (
                    "tags[\"star\"]",
                    "tag value must consist of alphanumeric characters, dots, dashes and underscores"
                ),
            ])
        );
    }

    #[test]
    fn mesh_service_kind_rules() {
        assert_eq!(
            check("kind: MeshService\nname: Web!\nmesh: m\ntags: {a: b}\nproxyTypes: [Sidecar]"),
            pairs(&[
                (
                    "name",
                    "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'."
                ),
                ("mesh", "must not be set with kind MeshService"),
                ("tags", "must not be set with kind MeshService"),
                ("proxyTypes", "must not be set with kind MeshService"),
            ])
        );
        assert_eq!(
            check("kind: MeshService"),
            pairs(&[("", "name or labels must be set when kind is MeshService")])
        );
        assert_eq!(
            check("kind: MeshService\nlabels: {a: b}\nname: web\nsectionName: http"),
            pairs(&[
                (
                    "labels",
                    "either labels or name and namespace must be specified"
                ),
                (
                    "sectionName",
                    "sectionName should not be combined with labels"
                ),
            ])
        );
    }

    #[test]
    fn mesh_service_subset_kind_rules() {
        assert_eq!(
            check(
                "kind: MeshServiceSubset\nmesh: m\nproxyTypes: [Gateway]\ntags: {v: 'a b'}\nlabels: {a: b}\nnamespace: ns\nsectionName: s"
            ),
            pairs(&[
                ("name", "must be set when kind is MeshServiceSubset"),
                ("mesh", "must not be set with kind MeshServiceSubset"),
                ("proxyTypes", "must not be set with kind MeshServiceSubset"),
                (
                    "tags[\"v\"]",
                    "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\""
                ),
                ("labels", "must not be set with kind MeshServiceSubset"),
                ("namespace", "must not be set with kind MeshServiceSubset"),
                ("sectionName", "must not be set with kind MeshServiceSubset"),
            ])
        );
        assert_eq!(
            check("kind: MeshServiceSubset\nname: a/b"),
            pairs(&[(
                "name",
                "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'."
            )])
        );
    }

    #[test]
    fn empty_strings_count_as_unset() {
        assert!(check("kind: Mesh\nname: ''\nmesh: ''\nnamespace: ''\nsectionName: ''").is_empty());
    }
}
