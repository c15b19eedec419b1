//! Mesh checks (Kuma's `mesh_validator.go`, plus the CA plugins' config checks that Kuma
//! runs server-side): the mTLS section, the few legacy fields Aerie interprets, and (in
//! `mesh_backends.rs`) the logging, tracing and metrics backends and constraints.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ValidationError;
use crate::duration::parse_kuma_duration;
use crate::spec::{BuiltinCaConf, DataSource, MeshSpec, Mtls, MtlsBackend, ProvidedCaConf};

use super::{check_one_of, is_base64};

/// Kuma allows one mTLS backend per mesh (`AllowedMTLSBackends`).
const MAX_MTLS_BACKENDS: usize = 1;

/// mTLS modes; STRICT is the default when unset.
const MODES: [&str; 2] = ["STRICT", "PERMISSIVE"];

/// RSA key sizes the builtin CA can generate.
const RSA_BITS: [u32; 3] = [2048, 3072, 4096];

/// Message for a duration that does not match `^\d+(y|w|d|h|m|s|ms)$` or `0`.
const BAD_DURATION: &str = "has to be a valid format";

/// Validates a Mesh body; paths are top-level (`mtls.…`).
pub(super) fn validate(spec: &MeshSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(mtls) = &spec.mtls {
        errs.add_prefixed("mtls", validate_mtls(mtls));
    }
    errs.add_prefixed(
        "",
        super::mesh_backends::validate(
            spec.logging.as_ref(),
            spec.tracing.as_ref(),
            spec.metrics.as_ref(),
            spec.constraints.as_ref(),
        ),
    );
    for (i, entry) in spec
        .skip_creating_initial_policies
        .iter()
        .flatten()
        .enumerate()
    {
        if entry.is_empty() {
            errs.add(
                format!("skipCreatingInitialPolicies[{i}]"),
                "cannot be empty",
            );
        }
    }
    if zone_egress_enabled(spec.routing.as_ref()) && !has_enabled_backend(spec.mtls.as_ref()) {
        errs.add("mtls", "has to be set when zoneEgress enabled");
    }
    errs
}

/// The `mtls` section: backend count, unique names, the enabled backend, each backend.
fn validate_mtls(mtls: &Mtls) -> ValidationError {
    let mut errs = ValidationError::new();
    if mtls.backends.len() > MAX_MTLS_BACKENDS {
        errs.add(
            "backends",
            format!("cannot have more than {MAX_MTLS_BACKENDS} backends"),
        );
    }
    for (i, backend) in mtls.backends.iter().enumerate() {
        let at = format!("backends[{i}]");
        if backend.name.is_empty() {
            errs.add(format!("{at}.name"), "cannot be empty");
        } else if mtls.backends[..i].iter().any(|b| b.name == backend.name) {
            errs.add(
                format!("{at}.name"),
                format!(
                    "\"{}\" name is already used for another backend",
                    backend.name
                ),
            );
        }
        errs.add_prefixed(&at, validate_backend(backend));
    }
    let names_a_backend = |name: &str| mtls.backends.iter().any(|b| b.name == name);
    let enabled = mtls.enabled_backend.as_deref().unwrap_or("");
    if !enabled.is_empty() && !names_a_backend(enabled) {
        errs.add(
            "enabledBackend",
            "has to be set to one of the backends in the mesh",
        );
    }
    errs
}

/// One CA backend: its type, mode, durations and type-specific `conf`.
fn validate_backend(backend: &MtlsBackend) -> ValidationError {
    let mut errs = ValidationError::new();
    check_one_of(&mut errs, "mode", backend.mode.as_deref(), &MODES);
    if let Some(dp_cert) = &backend.dp_cert {
        let expiration = dp_cert
            .rotation
            .as_ref()
            .and_then(|r| r.expiration.as_deref());
        check_duration(&mut errs, "dpCert.rotation.expiration", expiration);
        check_duration(
            &mut errs,
            "dpCert.requestTimeout",
            dp_cert.request_timeout.as_deref(),
        );
    }
    if let Some(root_chain) = &backend.root_chain {
        check_duration(
            &mut errs,
            "rootChain.requestTimeout",
            root_chain.request_timeout.as_deref(),
        );
    }
    match backend.backend_type.as_str() {
        "builtin" => errs.add_prefixed("conf", validate_builtin_conf(backend.conf.as_ref())),
        "provided" => errs.add_prefixed("conf", validate_provided_conf(backend.conf.as_ref())),
        other => errs.add(
            "type",
            format!(
                "unknown backend type \"{other}\". Available backends: \"builtin\", \"provided\""
            ),
        ),
    }
    errs
}

/// A set duration must parse as a Kuma duration; unset ones take defaults.
fn check_duration(errs: &mut ValidationError, field: &str, value: Option<&str>) {
    if value.is_some_and(|v| parse_kuma_duration(v).is_none()) {
        errs.add(field, BAD_DURATION);
    }
}

/// Reads a backend `conf` as `T`; a structural problem is reported with its path
/// (relative to `conf`), and `None` returned so no further checks run on it.
fn typed_conf<T: DeserializeOwned + Default>(
    conf: Option<&Value>,
    errs: &mut ValidationError,
) -> Option<T> {
    match conf {
        None | Some(Value::Null) => Some(T::default()),
        Some(v) => match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                errs.add(field, e.into_inner().to_string());
                None
            }
        },
    }
}

/// `builtin` CA: optional key size and root certificate lifetime.
fn validate_builtin_conf(conf: Option<&Value>) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(conf) = typed_conf::<BuiltinCaConf>(conf, &mut errs) else {
        return errs;
    };
    if let Some(ca_cert) = &conf.ca_cert {
        if ca_cert.rsa_bits.is_some_and(|b| !RSA_BITS.contains(&b)) {
            errs.add("caCert.RSAbits", "must be one of 2048, 3072, 4096");
        }
        check_duration(
            &mut errs,
            "caCert.expiration",
            ca_cert.expiration.as_deref(),
        );
    }
    errs
}

/// `provided` CA: the user's certificate and key, both mandatory.
fn validate_provided_conf(conf: Option<&Value>) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(conf) = typed_conf::<ProvidedCaConf>(conf, &mut errs) else {
        return errs;
    };
    for (field, source) in [("cert", &conf.cert), ("key", &conf.key)] {
        match source {
            None => errs.add(field, "has to be defined"),
            Some(source) => errs.add_prefixed(field, validate_data_source(source)),
        }
    }
    errs
}

/// Kuma's DataSource oneof: exactly one of secret, file, inline, inlineString.
pub(super) fn validate_data_source(source: &DataSource) -> ValidationError {
    let mut errs = ValidationError::new();
    let set: Vec<(&str, &str)> = [
        ("secret", &source.secret),
        ("file", &source.file),
        ("inline", &source.inline),
        ("inlineString", &source.inline_string),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    match set.as_slice() {
        [] => errs.add(
            "",
            "data source has to be chosen. Available sources: secret, file, inline, inlineString",
        ),
        [(name, value)] => {
            if value.is_empty() {
                errs.add(*name, "cannot be empty");
            } else if *name == "inline" && !is_base64(value) {
                errs.add("inline", "must be valid base64");
            }
        }
        _ => errs.add("", "only one data source can be set"),
    }
    errs
}

/// Whether `routing.zoneEgress` is `true` (routing is stored as free-form JSON).
fn zone_egress_enabled(routing: Option<&Value>) -> bool {
    routing
        .and_then(|r| r.get("zoneEgress"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn has_enabled_backend(mtls: Option<&Mtls>) -> bool {
    mtls.and_then(|m| m.enabled_backend.as_deref())
        .is_some_and(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::test_util::{assert_errors, assert_valid};

    fn mesh(body: &str) -> String {
        format!("type: Mesh\nname: m\n{body}")
    }

    /// A mesh with one backend whose extra lines are `backend` (indented 6 spaces).
    fn one_backend(backend: &str) -> String {
        mesh(&format!(
            "mtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n{backend}"
        ))
    }

    const SOURCES_MSG: &str =
        "data source has to be chosen. Available sources: secret, file, inline, inlineString";

    #[test]
    fn accepted_meshes() {
        assert_valid("type: Mesh\nname: default\n");
        assert_valid(&mesh("mtls: {}\n"));
        assert_valid(&mesh(
            "mtls:\n  enabledBackend: ''\n  backends:\n    - name: a\n      type: builtin\n",
        ));
        assert_valid(&one_backend(
            "      type: builtin\n      mode: PERMISSIVE\n      dpCert:\n        rotation: {expiration: 1d}\n        requestTimeout: 10s\n      rootChain: {requestTimeout: 500ms}\n      conf:\n        caCert: {RSAbits: 4096, expiration: 2y}\n",
        ));
        assert_valid(&one_backend(
            "      type: builtin\n      mode: STRICT\n      conf: {caCert: {expiration: '0'}}\n",
        ));
        assert_valid(&one_backend(
            "      type: provided\n      conf:\n        cert: {secret: my-cert}\n        key: {file: /etc/ca.key}\n",
        ));
        assert_valid(&one_backend(
            "      type: provided\n      conf:\n        cert: {inline: LS0tLS1CRUdJTg==}\n        key: {inlineString: '-----BEGIN KEY-----'}\n",
        ));
        assert_valid(&mesh("skipCreatingInitialPolicies: ['*']\n"));
        assert_valid(&mesh(
            "skipCreatingInitialPolicies: [MeshRetry, MeshTimeout]\n",
        ));
        assert_valid(&mesh(
            "routing: {zoneEgress: true}\nmtls:\n  enabledBackend: a\n  backends: [{name: a, type: builtin}]\n",
        ));
        assert_valid(&mesh("routing: {zoneEgress: false}\n"));
    }

    #[test]
    fn at_most_one_backend_with_unique_names() {
        assert_errors(
            &mesh(
                "mtls:\n  backends:\n    - {name: a, type: builtin}\n    - {name: a, type: builtin}\n    - {name: '', type: builtin}\n",
            ),
            &[
                ("mtls.backends", "cannot have more than 1 backends"),
                (
                    "mtls.backends[1].name",
                    "\"a\" name is already used for another backend",
                ),
                ("mtls.backends[2].name", "cannot be empty"),
            ],
        );
    }

    #[test]
    fn enabled_backend_must_name_a_backend() {
        assert_errors(
            &mesh("mtls:\n  enabledBackend: ca-2\n  backends: [{name: ca-1, type: builtin}]\n"),
            &[(
                "mtls.enabledBackend",
                "has to be set to one of the backends in the mesh",
            )],
        );
        assert_errors(
            &mesh("mtls:\n  enabledBackend: builtin\n"),
            &[(
                "mtls.enabledBackend",
                "has to be set to one of the backends in the mesh",
            )],
        );
    }

    #[test]
    fn backend_type_must_be_known() {
        assert_errors(
            &one_backend("      type: vault\n"),
            &[(
                "mtls.backends[0].type",
                "unknown backend type \"vault\". Available backends: \"builtin\", \"provided\"",
            )],
        );
        assert_errors(
            &one_backend(""),
            &[(
                "mtls.backends[0].type",
                "unknown backend type \"\". Available backends: \"builtin\", \"provided\"",
            )],
        );
    }

    #[test]
    fn mode_must_be_strict_or_permissive() {
        assert_errors(
            &one_backend("      type: builtin\n      mode: strict\n"),
            &[("mtls.backends[0].mode", "must be one of STRICT, PERMISSIVE")],
        );
    }

    #[test]
    fn durations_must_be_kuma_durations() {
        assert_errors(
            &one_backend(
                "      type: builtin\n      dpCert:\n        rotation: {expiration: 1h30m}\n        requestTimeout: ten\n      rootChain: {requestTimeout: ''}\n      conf: {caCert: {expiration: 1x}}\n",
            ),
            &[
                ("mtls.backends[0].dpCert.rotation.expiration", BAD_DURATION),
                ("mtls.backends[0].dpCert.requestTimeout", BAD_DURATION),
                ("mtls.backends[0].rootChain.requestTimeout", BAD_DURATION),
                ("mtls.backends[0].conf.caCert.expiration", BAD_DURATION),
            ],
        );
    }

    /// Found by fuzzing: durations beyond Go's `time.Duration` (about 292 years) passed
    /// validation and overflowed the control plane's time arithmetic when used.
    #[test]
    fn durations_beyond_go_max_duration_are_refused() {
        assert_errors(
            &one_backend(
                "      type: builtin\n      dpCert:\n        rotation: {expiration: 99999999999y}\n        requestTimeout: 2562048h\n      rootChain: {requestTimeout: 9223372037s}\n      conf: {caCert: {expiration: 293y}}\n",
            ),
            &[
                ("mtls.backends[0].dpCert.rotation.expiration", BAD_DURATION),
                ("mtls.backends[0].dpCert.requestTimeout", BAD_DURATION),
                ("mtls.backends[0].rootChain.requestTimeout", BAD_DURATION),
                ("mtls.backends[0].conf.caCert.expiration", BAD_DURATION),
            ],
        );
        assert_valid(&one_backend(
            "      type: builtin\n      dpCert:\n        rotation: {expiration: 292y}\n      conf: {caCert: {expiration: 2562047h}}\n",
        ));
    }

    #[test]
    fn builtin_conf_shape_and_key_size() {
        assert_errors(
            &one_backend("      type: builtin\n      conf: {caCert: {RSAbits: 1024}}\n"),
            &[(
                "mtls.backends[0].conf.caCert.RSAbits",
                "must be one of 2048, 3072, 4096",
            )],
        );
        let errs = crate::validate::test_util::errors_of(&one_backend(
            "      type: builtin\n      conf: {caCert: {bits: 2048}}\n",
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "mtls.backends[0].conf.caCert.bits");
        assert!(errs[0].1.contains("unknown field `bits`"), "{errs:?}");
        let errs = crate::validate::test_util::errors_of(&one_backend(
            "      type: builtin\n      conf: {caCert: {RSAbits: many}}\n",
        ));
        assert_eq!(errs[0].0, "mtls.backends[0].conf.caCert.RSAbits");
        let errs = crate::validate::test_util::errors_of(&one_backend(
            "      type: builtin\n      conf: 5\n",
        ));
        assert_eq!(errs[0].0, "mtls.backends[0].conf", "{errs:?}");
    }

    #[test]
    fn provided_conf_needs_cert_and_key() {
        assert_errors(
            &one_backend("      type: provided\n"),
            &[
                ("mtls.backends[0].conf.cert", "has to be defined"),
                ("mtls.backends[0].conf.key", "has to be defined"),
            ],
        );
        assert_errors(
            &one_backend("      type: provided\n      conf: {cert: {secret: c}}\n"),
            &[("mtls.backends[0].conf.key", "has to be defined")],
        );
        let errs = crate::validate::test_util::errors_of(&one_backend(
            "      type: provided\n      conf: {cert: {secret: c}, key: {secret: k}, extra: 1}\n",
        ));
        assert_eq!(errs[0].0, "mtls.backends[0].conf.extra", "{errs:?}");
    }

    #[test]
    fn data_sources_are_a_oneof() {
        assert_errors(
            &one_backend(
                "      type: provided\n      conf:\n        cert: {}\n        key: {secret: a, file: b}\n",
            ),
            &[
                ("mtls.backends[0].conf.cert", SOURCES_MSG),
                (
                    "mtls.backends[0].conf.key",
                    "only one data source can be set",
                ),
            ],
        );
        assert_errors(
            &one_backend(
                "      type: provided\n      conf:\n        cert: {inline: 'not base64!'}\n        key: {secret: ''}\n",
            ),
            &[
                ("mtls.backends[0].conf.cert.inline", "must be valid base64"),
                ("mtls.backends[0].conf.key.secret", "cannot be empty"),
            ],
        );
    }

    #[test]
    fn skip_creating_initial_policies_entries() {
        assert_errors(
            &mesh("skipCreatingInitialPolicies: ['*', '']\n"),
            &[("skipCreatingInitialPolicies[1]", "cannot be empty")],
        );
    }

    #[test]
    fn zone_egress_needs_mtls() {
        assert_errors(
            &mesh("routing: {zoneEgress: true}\n"),
            &[("mtls", "has to be set when zoneEgress enabled")],
        );
    }

    #[test]
    fn kubernetes_mesh_uses_the_same_paths() {
        assert_errors(
            "apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  mtls:\n    backends:\n      - name: builtin\n        type: builtin\n    enabledBackend: other\n",
            &[(
                "mtls.enabledBackend",
                "has to be set to one of the backends in the mesh",
            )],
        );
    }
}
