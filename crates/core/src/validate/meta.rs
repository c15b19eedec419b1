//! Checks on `name` and `mesh`, common to every type (Kuma's `ValidateMeta`).

use crate::{Resource, ResourceType, Scope, ValidationError};

/// Kuma's message for a name that is not a lowercase RFC 1123 subdomain.
const NAME_CHARS: &str = "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Kuma's message for a mesh reference outside `^[0-9a-z-_.]*$` (older, laxer rule kept
/// because meshes created before Kuma 2.5 may contain `_`).
const MESH_CHARS: &str = "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols.";

/// Longest name Kuma accepts for any resource (a DNS subdomain).
const MAX_NAME: usize = 253;

/// Longest Mesh name: mesh names end up in DNS labels and SPIFFE IDs.
const MAX_MESH_NAME: usize = 63;

/// Validates `name` (and `mesh` for mesh-scoped types).
pub(super) fn validate(r: &Resource) -> ValidationError {
    let mut errs = ValidationError::new();
    let name = r.meta.name.as_str();
    if let Some(msg) = identifier_problem(name, is_rfc1123_subdomain, NAME_CHARS) {
        errs.add("name", msg);
    }
    if r.resource_type() == ResourceType::Mesh
        && (MAX_MESH_NAME + 1..=MAX_NAME).contains(&name.len())
    {
        errs.add("name", "cannot be longer than 63 characters");
    }
    let mesh = r.meta.mesh.as_deref().unwrap_or("");
    match r.resource_type().scope() {
        Scope::Mesh => {
            if let Some(msg) = identifier_problem(mesh, is_mesh_reference, MESH_CHARS) {
                errs.add("mesh", msg);
            }
        }
        Scope::Global if !mesh.is_empty() => errs.add(
            "mesh",
            format!(
                "must not be set: {} is not inside a mesh",
                r.resource_type()
            ),
        ),
        Scope::Global => {}
    }
    errs
}

/// Deprecation remarks about names: Kuma accepts Mesh names that are not RFC 1035 labels
/// (e.g. with dots) but warns that this is deprecated.
pub(super) fn warnings(r: &Resource) -> Vec<String> {
    let name = r.meta.name.as_str();
    if r.resource_type() != ResourceType::Mesh || name.is_empty() {
        return Vec::new();
    }
    let problems = dns1035_label_problems(name);
    if problems.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "Invalid Mesh resource name: '{name}'. It does not conform to the DNS format (RFC 1035). This is deprecated. Errors: {}",
        problems.join("; ")
    )]
}

/// The first problem of an identifier, in Kuma's order: empty, too long, bad characters.
fn identifier_problem(
    id: &str,
    well_formed: fn(&str) -> bool,
    chars_message: &'static str,
) -> Option<&'static str> {
    if id.is_empty() {
        Some("cannot be empty")
    } else if id.len() > MAX_NAME {
        Some("value length must less or equal 253")
    } else if !well_formed(id) {
        Some(chars_message)
    } else {
        None
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
pub(super) fn is_rfc1123_subdomain(s: &str) -> bool {
    s.split('.').all(is_rfc1123_label)
}

/// One dot-free part of an RFC 1123 subdomain (no length limit, as in Kuma's regex).
fn is_rfc1123_label(label: &str) -> bool {
    let lower_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            lower_alnum(first)
                && lower_alnum(last)
                && bytes.iter().all(|&b| lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// `^[0-9a-z-_.]*$`
fn is_mesh_reference(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// What Kubernetes' `IsDNS1035Label` reports, with its exact wording.
fn dns1035_label_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    let bytes = s.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        out.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MeshSpec, SecretSpec, ZoneSpec};
    use crate::validate::test_util::{assert_errors, assert_valid, violations};
    use crate::{Meta, Spec};

    fn resource(spec: Spec, name: &str, mesh: Option<&str>) -> Resource {
        let meta = Meta {
            name: name.into(),
            mesh: mesh.map(Into::into),
            ..Meta::default()
        };
        Resource { meta, spec }
    }

    fn secret(name: &str, mesh: Option<&str>) -> Resource {
        resource(
            Spec::Secret(SecretSpec {
                data: "YQ==".into(),
            }),
            name,
            mesh,
        )
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect()
    }

    #[test]
    fn valid_names() {
        for name in ["a", "web-01", "a.b.c", "0", "x".repeat(253).as_str()] {
            assert!(
                violations(&secret(name, Some("default"))).is_empty(),
                "{name}"
            );
        }
        assert_valid("type: Zone\nname: zone-1\n");
        assert_valid("type: GlobalSecret\nname: g\ndata: YQ==\n");
    }

    #[test]
    fn empty_name() {
        assert_eq!(
            violations(&secret("", Some("default"))),
            pairs(&[("name", "cannot be empty")])
        );
    }

    #[test]
    fn too_long_name() {
        let name = "a".repeat(254);
        assert_eq!(
            violations(&secret(&name, Some("default"))),
            pairs(&[("name", "value length must less or equal 253")])
        );
    }

    #[test]
    fn names_that_are_not_rfc1123_subdomains() {
        for name in ["Web", "a_b", "-a", "a-", "a..b", ".a", "a.", "a b", "ä"] {
            assert_eq!(
                violations(&secret(name, Some("default"))),
                pairs(&[("name", NAME_CHARS)]),
                "{name}"
            );
        }
    }

    #[test]
    fn mesh_reference_rules() {
        assert!(violations(&secret("s", Some("old_mesh.1"))).is_empty());
        assert_eq!(
            violations(&secret("s", Some(""))),
            pairs(&[("mesh", "cannot be empty")])
        );
        assert_eq!(
            violations(&secret("s", None)),
            pairs(&[("mesh", "cannot be empty")])
        );
        assert_eq!(
            violations(&secret("s", Some("Mesh"))),
            pairs(&[("mesh", MESH_CHARS)])
        );
        let long = "m".repeat(254);
        assert_eq!(
            violations(&secret("s", Some(&long))),
            pairs(&[("mesh", "value length must less or equal 253")])
        );
    }

    #[test]
    fn global_types_take_no_mesh() {
        let zone = resource(Spec::Zone(ZoneSpec::default()), "z", Some("default"));
        assert_eq!(
            violations(&zone),
            pairs(&[("mesh", "must not be set: Zone is not inside a mesh")])
        );
        let zone = resource(Spec::Zone(ZoneSpec::default()), "z", Some(""));
        assert!(violations(&zone).is_empty());
    }

    #[test]
    fn mesh_names_are_at_most_63_characters() {
        let mesh = |name: &str| resource(Spec::Mesh(MeshSpec::default()), name, None);
        assert!(violations(&mesh(&"m".repeat(63))).is_empty());
        assert_eq!(
            violations(&mesh(&"m".repeat(64))),
            pairs(&[("name", "cannot be longer than 63 characters")])
        );
        assert_eq!(
            violations(&mesh(&"m".repeat(254))),
            pairs(&[("name", "value length must less or equal 253")])
        );
        // Other types may use the full 253.
        assert!(violations(&secret(&"s".repeat(64), Some("default"))).is_empty());
    }

    #[test]
    fn mesh_name_not_rfc1035_is_a_warning() {
        let r = resource(Spec::Mesh(MeshSpec::default()), "aa.a", None);
        assert!(violations(&r).is_empty());
        assert_eq!(
            super::super::warnings(&r),
            vec!["Invalid Mesh resource name: 'aa.a'. It does not conform to the DNS format (RFC 1035). This is deprecated. Errors: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
        let r = resource(Spec::Mesh(MeshSpec::default()), "1mesh", None);
        assert_eq!(super::super::warnings(&r).len(), 1);
        let r = resource(Spec::Mesh(MeshSpec::default()), "default", None);
        assert!(super::super::warnings(&r).is_empty());
        // Other types are not subject to the RFC 1035 remark.
        assert!(super::super::warnings(&secret("a.b", Some("default"))).is_empty());
    }

    #[test]
    fn meta_errors_come_before_spec_errors() {
        assert_errors(
            "type: Secret\nname: A\nmesh: default\ndata: ''\n",
            &[("name", NAME_CHARS), ("data", "cannot be empty")],
        );
    }
}
