//! Secret and GlobalSecret checks (Zone has nothing beyond its meta).

use crate::ValidationError;
use crate::spec::SecretSpec;

use super::is_base64;

/// `data` holds the secret's bytes as base64: it must be present and decodable, or the
/// control plane would fail later when a CA or token signer reads it.
pub(super) fn validate_secret(spec: &SecretSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    if spec.data.is_empty() {
        errs.add("data", "cannot be empty");
    } else if !is_base64(&spec.data) {
        errs.add("data", "must be valid base64");
    }
    errs
}

#[cfg(test)]
mod tests {
    use crate::validate::test_util::{assert_errors, assert_valid};

    #[test]
    fn secrets() {
        for t in ["type: Secret\nmesh: default", "type: GlobalSecret"] {
            assert_valid(&format!("{t}\nname: s\ndata: aGVsbG8=\n"));
            assert_errors(&format!("{t}\nname: s\n"), &[("data", "cannot be empty")]);
            assert_errors(
                &format!("{t}\nname: s\ndata: ''\n"),
                &[("data", "cannot be empty")],
            );
            assert_errors(
                &format!("{t}\nname: s\ndata: 'hello!'\n"),
                &[("data", "must be valid base64")],
            );
            assert_errors(
                &format!("{t}\nname: s\ndata: aGVsbG8\n"),
                &[("data", "must be valid base64")],
            );
        }
    }

    #[test]
    fn zones_have_only_meta_rules() {
        assert_valid("type: Zone\nname: zone-1\nenabled: false\n");
        assert_valid(
            "apiVersion: kuma.io/v1alpha1\nkind: Zone\nmetadata:\n  name: zone-1\nspec:\n  enabled: true\n",
        );
        assert_errors(
            "type: Zone\nname: Zone_1\n",
            &[(
                "name",
                "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            )],
        );
    }
}
