//! Semantic validation of one resource on its own: the checks Kuma's `Validate()` methods run,
//! with the same field paths and messages, so kumactl users see familiar errors.
//!
//! Parsing ([`crate::format`]) already fixed the *structure* of the document; this module
//! checks *values*: names, enums, ports, addresses, references between fields of the same
//! resource. Checks never stop at the first problem (except where Kuma stops, e.g. a
//! Dataplane without `networking`): every violation is collected so one `apply` reports
//! everything wrong with a document.
//!
//! Nothing here looks at other resources (whether a referenced Secret exists, whether the
//! mesh exists): that needs the store and is the control plane's job.
//!
//! Field paths follow Kuma: proto-based types (Mesh, Dataplane, Secret, Zone) have their
//! fields at the top level (`mtls.enabledBackend`), newer types are under `spec.`
//! (`spec.from[0].default.action`).

mod dataplane;
pub(crate) mod matches;
mod mesh;
mod mesh_backends;
mod meshservice;
mod meta;
mod other;
pub(crate) mod targetref;
mod zoneingress;

use crate::resource::ResourceBody;
use crate::spec::{
    DataplaneSpec, MeshServiceSpec, MeshSpec, SecretSpec, ZoneIngressSpec, ZoneSpec,
};
use crate::{Meta, Resource, ValidationError};

impl ResourceBody for MeshSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        mesh::validate(self)
    }
}

impl ResourceBody for DataplaneSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        dataplane::validate(self)
    }
}

impl ResourceBody for MeshServiceSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        meshservice::validate(self)
    }
}

impl ResourceBody for SecretSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        other::validate_secret(self)
    }
}

/// A Zone's body has nothing Kuma checks beyond its name.
impl ResourceBody for ZoneSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        ValidationError::new()
    }
}

impl ResourceBody for ZoneIngressSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        zoneingress::validate(self)
    }
}

/// Checks one resource on its own (meta + spec). Every problem is reported at once.
pub fn validate(r: &Resource) -> Result<(), crate::ValidationError> {
    let mut errs = meta::validate(r);
    let spec_errs = r.spec.body().validate(&r.meta);
    errs.violations.extend(spec_errs.violations);
    errs.into_result()
}

/// Non-fatal remarks (e.g. deprecations) to show the user after a successful apply.
pub fn warnings(r: &crate::Resource) -> Vec<String> {
    let mut out = meta::warnings(r);
    out.extend(r.spec.body().warnings());
    out
}

/// Whether `name` can name a zone: an RFC 1123 label (lower-case letters, digits, `-`; at
/// most 63 characters), since it ends up in resource names and labels.
pub fn is_valid_zone_name(name: &str) -> bool {
    name.len() <= 63 && meta::is_rfc1123_subdomain(name) && !name.contains('.')
}

/// Kuma's port check, shared by every port field.
const PORT_RANGE: &str = "port must be in the range [1, 65535]";

/// Adds Kuma's port violation when `port` is not a usable TCP/UDP port.
fn check_port(errs: &mut ValidationError, field: &str, port: u32) {
    if !(1..=65535).contains(&port) {
        errs.add(field, PORT_RANGE);
    }
}

/// `must be one of A, B, C`: the message for every closed set of string values.
pub(crate) fn one_of(values: &[&str]) -> String {
    format!("must be one of {}", values.join(", "))
}

/// Adds `must be one of …` when an optional value is set but outside `allowed`
/// (unset values take the type's default).
fn check_one_of(errs: &mut ValidationError, field: &str, value: Option<&str>, allowed: &[&str]) {
    if value.is_some_and(|v| !allowed.contains(&v)) {
        errs.add(field, one_of(allowed));
    }
}

/// A map-key path segment the way Kuma prints it: `prefix["key"]`.
fn key_path(prefix: &str, key: &str) -> String {
    format!("{prefix}[{key:?}]")
}

/// Whether `s` is standard-alphabet base64 with padding (what Kuma's `bytes` fields hold).
///
/// Written by hand because aerie-core takes no dependency for one check; decoding itself is
/// left to whoever needs the bytes.
fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.chunks_exact(4).remainder().is_empty() {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return false;
    }
    let body = &bytes[..bytes.len() - padding];
    body.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A simple DNS-name check (govalidator's `IsDNSName`, which Kuma uses for addresses):
/// dot-separated labels of 1-63 letters, digits, `-` or `_`, not starting with `-`,
/// an optional trailing dot, at most 253 characters.
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the validators' tests.

    use crate::format::{parse_yaml_value, resource_from_value};
    use crate::{Resource, Spec};

    /// Parses one YAML document (Universal or Kubernetes) into a resource, panicking on
    /// parse errors: tests feed it documents that are structurally valid.
    pub fn parse(yaml: &str) -> Resource {
        let doc = parse_yaml_value(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        resource_from_value(&doc).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// The `(field, message)` pairs `validate` reports (empty when valid).
    pub fn violations(r: &Resource) -> Vec<(String, String)> {
        match super::validate(r) {
            Ok(()) => Vec::new(),
            Err(e) => e
                .violations
                .into_iter()
                .map(|v| (v.field, v.message))
                .collect(),
        }
    }

    /// Violations of a YAML document.
    pub fn errors_of(yaml: &str) -> Vec<(String, String)> {
        violations(&parse(yaml))
    }

    /// Asserts the document is valid, printing every violation otherwise.
    pub fn assert_valid(yaml: &str) {
        let errs = errors_of(yaml);
        assert!(
            errs.is_empty(),
            "unexpected violations {errs:?} for\n{yaml}"
        );
    }

    /// Asserts the document is invalid with exactly these violations, in order.
    pub fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
        let got = errors_of(yaml);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want, "for\n{yaml}");
    }

    /// Asserts one of the violations is exactly `(field, message)`.
    pub fn assert_has_error(yaml: &str, field: &str, message: &str) {
        let got = errors_of(yaml);
        assert!(
            got.iter().any(|(f, m)| f == field && m == message),
            "expected {field}: {message}, got {got:?} for\n{yaml}"
        );
    }

    /// Whether the resource is a MeshTrafficPermission.
    pub fn is_mtp(r: &Resource) -> bool {
        matches!(r.spec, Spec::MeshTrafficPermission(_))
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    /// Every YAML of the seed guide (`first-policy.md`), both tabs. The Kubernetes
    /// `allow-all` block in the guide ends with a stray `' | kubectl apply -f -` after the
    /// action; the document meant is the one below.
    const SEED_DOCS: [&str; 8] = [
        "apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  mtls:\n    backends:\n      - name: builtin\n        type: builtin\n    enabledBackend: builtin\n",
        "type: Mesh\nname: default\nmtls:\n  backends:\n    - name: builtin\n      type: builtin\n  enabledBackend: builtin\n",
        "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata:\n  name: allow-all\n  namespace: kong-mesh-system\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Allow\n",
        "type: MeshTrafficPermission\nname: allow-all\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Allow\n",
        "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata:\n  name: default-deny\n  namespace: kong-mesh-system\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Deny\n",
        "type: MeshTrafficPermission\nname: default-deny\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Deny\n",
        "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata:\n  name: allow-flight-control-to-check-in\n  namespace: kong-mesh-system\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  from:\n    - targetRef:\n        kind: MeshService\n        name: flight-control-blu\n      default:\n        action: Allow\n",
        "type: MeshTrafficPermission\nname: allow-flight-control-to-check-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  from:\n    - targetRef:\n        kind: MeshService\n        name: flight-control-blu\n      default:\n        action: Allow\n",
    ];

    #[test]
    fn every_seed_document_is_valid_and_warning_free() {
        for doc in SEED_DOCS {
            let r = parse(doc);
            assert_eq!(validate(&r), Ok(()), "{doc}");
            assert!(warnings(&r).is_empty(), "{:?} for {doc}", warnings(&r));
        }
    }

    #[test]
    fn seed_tabs_describe_the_same_resources() {
        for pair in SEED_DOCS.chunks(2) {
            assert_eq!(parse(pair[0]), parse(pair[1]));
        }
        assert!(SEED_DOCS[2..].iter().all(|d| is_mtp(&parse(d))));
    }

    #[test]
    fn meta_and_spec_problems_are_reported_together() {
        let yaml = "type: MeshTrafficPermission\nname: Bad_Name\nmesh: Mesh!\nspec:\n  targetRef:\n    kind: Nope\n  from:\n    - targetRef:\n        kind: Dataplane\n      default:\n        action: allow\n    - default: {}\n";
        assert_errors(
            yaml,
            &[
                (
                    "name",
                    "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                ),
                (
                    "mesh",
                    "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols.",
                ),
                ("spec.targetRef.kind", "value 'Nope' is not supported"),
                (
                    "spec.from[0].targetRef.kind",
                    "value 'Dataplane' is not supported",
                ),
                (
                    "spec.from[0].default.action",
                    "must be one of Allow, Deny, AllowWithShadowDeny",
                ),
                ("spec.from[1].targetRef.kind", "must be defined"),
                ("spec.from[1].default.action", "must be defined"),
            ],
        );
        let err = validate(&parse(yaml)).unwrap_err();
        assert!(
            err.to_string()
                .contains("; spec.targetRef.kind: value 'Nope' is not supported; ")
        );
    }

    #[test]
    fn several_dataplane_problems_are_reported_together() {
        assert_errors(
            "type: Dataplane\nname: dp\nmesh: default\nnetworking:\n  address: 0.0.0.0\n  inbound:\n    - port: 0\n      tags: {kuma.io/protocol: smtp}\n  outbound:\n    - port: 70000\n",
            &[
                ("networking.address", "must not be 0.0.0.0 or ::"),
                ("networking.inbound[0].port", PORT_RANGE),
                (
                    "networking.inbound[0].tags[\"kuma.io/protocol\"]",
                    "tag \"kuma.io/protocol\" has an invalid value \"smtp\". Allowed values: grpc, http, http2, kafka, tcp",
                ),
                (
                    "networking.inbound[0].tags[\"kuma.io/service\"]",
                    "tag has to exist",
                ),
                ("networking.outbound[0].port", PORT_RANGE),
                (
                    "networking.outbound[0].tags",
                    "mandatory tag \"kuma.io/service\" is missing",
                ),
            ],
        );
    }

    /// Field names of every body, so random documents often have the right shape.
    const KEYS: [&str; 48] = [
        "networking",
        "address",
        "inbound",
        "outbound",
        "port",
        "servicePort",
        "serviceAddress",
        "tags",
        "state",
        "backendRef",
        "kind",
        "name",
        "labels",
        "admin",
        "gateway",
        "type",
        "listeners",
        "transparentProxying",
        "reachableBackends",
        "refs",
        "namespace",
        "serviceProbe",
        "interval",
        "healthyThreshold",
        "probes",
        "endpoints",
        "inboundPath",
        "metrics",
        "mtls",
        "backends",
        "enabledBackend",
        "mode",
        "dpCert",
        "rotation",
        "expiration",
        "conf",
        "caCert",
        "RSAbits",
        "cert",
        "inline",
        "routing",
        "zoneEgress",
        "targetRef",
        "from",
        "default",
        "action",
        "ports",
        "targetPort",
    ];

    /// Leaf values chosen to hit edge cases: empty, wildcard, non-ASCII, huge numbers.
    fn arb_leaf() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::json;
        prop_oneof![
            proptest::sample::select(vec![
                "",
                "*",
                "::",
                "0.0.0.0",
                "é",
                "=",
                "YQ==",
                "Mesh",
                "Dataplane",
                "MeshService",
                "MeshSubset",
                "MeshServiceSubset",
                "builtin",
                "provided",
                "BUILTIN",
                "Allow",
                "kuma.io/service",
                "0",
                "1y",
                "a..b",
                "-",
            ])
            .prop_map(|s| json!(s)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<bool>().prop_map(|b| json!(b)),
            ".{0,6}".prop_map(|s| json!(s)),
            Just(serde_json::Value::Null),
        ]
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        arb_leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS.to_vec()), inner), 0..5)
                    .prop_map(|kv| {
                        let map = kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                        serde_json::Value::Object(map)
                    }),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Whatever a document holds, once it parses, validation answers without panicking
        /// (and an invalid resource always comes with at least one violation).
        #[test]
        fn validation_never_panics(
            rtype in proptest::sample::select(crate::ResourceType::ALL.to_vec()),
            name in "[a-zA-Z0-9._-]{0,70}",
            body in arb_value(),
        ) {
            let mut doc = serde_json::Map::new();
            doc.insert("type".into(), rtype.name().into());
            doc.insert("name".into(), name.into());
            match (rtype.shape(), body) {
                (crate::Shape::Flat, serde_json::Value::Object(fields)) => doc.extend(fields),
                (_, body) => {
                    doc.insert("spec".into(), body);
                }
            }
            if let Ok(r) = crate::format::resource_from_value(&serde_json::Value::Object(doc)) {
                if let Err(e) = validate(&r) {
                    proptest::prop_assert!(!e.violations.is_empty());
                }
                let _ = warnings(&r);
            }
        }
    }

    /// Rich valid documents whose leaves the property test below replaces at random.
    const TEMPLATES: [&str; 5] = [
        "type: Mesh\nname: m\nskipCreatingInitialPolicies: ['*']\nrouting: {zoneEgress: true}\nmtls:\n  enabledBackend: ca\n  backends:\n    - name: ca\n      type: provided\n      mode: STRICT\n      dpCert: {rotation: {expiration: 1d}, requestTimeout: 1s}\n      rootChain: {requestTimeout: 1s}\n      conf: {cert: {inline: YQ==}, key: {secret: k}, caCert: {RSAbits: 2048, expiration: 1y}}\n",
        "type: Dataplane\nname: d\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  admin: {port: 9901}\n  gateway: {type: DELEGATED, tags: {kuma.io/service: g}}\n  inbound:\n    - {port: 80, servicePort: 81, serviceAddress: 127.0.0.1, address: 10.0.0.1, name: http, state: Ready, tags: {kuma.io/service: a, kuma.io/protocol: http}, serviceProbe: {interval: 1s, timeout: 1s, healthyThreshold: 1}}\n  outbound:\n    - {port: 1, address: 127.0.0.1, tags: {kuma.io/service: b}}\n    - {port: 2, backendRef: {kind: MeshService, name: b, port: 80, labels: {a: b}}}\n  transparentProxying: {reachableBackends: {refs: [{kind: MeshService, name: b, namespace: ns, labels: {a: b}}]}}\n  listeners: [{type: ZoneIngress}]\nmetrics: {type: prometheus}\nprobes: {port: 9000, endpoints: [{inboundPort: 80, inboundPath: /a, path: /b}]}\n",
        "type: MeshTrafficPermission\nname: p\nmesh: default\nspec:\n  targetRef: {kind: MeshServiceSubset, name: a, tags: {v: '1'}, labels: {a: b}, namespace: n1, sectionName: s, proxyTypes: [Sidecar], mesh: m}\n  from:\n    - targetRef: {kind: MeshSubset, tags: {kuma.io/service: a}}\n      default: {action: Allow}\n  rules: [{default: {}}]\n",
        "type: MeshService\nname: s\nmesh: default\nspec:\n  state: Available\n  ports: [{name: a, port: 80, targetPort: 8080, appProtocol: http}, {name: b, port: 81, targetPort: b}]\n  identities: [{type: SpiffeID, value: v}]\n",
        "type: Secret\nname: s\nmesh: default\ndata: YQ==\n",
    ];

    /// Replaces the leaves of `v` (strings, numbers, bools) in visiting order with the
    /// replacements given for them.
    fn replace_leaves(
        v: &mut serde_json::Value,
        replacements: &mut impl Iterator<Item = Option<serde_json::Value>>,
    ) {
        match v {
            serde_json::Value::Object(map) => map
                .values_mut()
                .for_each(|child| replace_leaves(child, replacements)),
            serde_json::Value::Array(items) => items
                .iter_mut()
                .for_each(|child| replace_leaves(child, replacements)),
            leaf => {
                if let Some(Some(new)) = replacements.next() {
                    *leaf = new;
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// Valid documents with random leaves swapped for edge-case values: validation
        /// answers without panicking and reports a problem with a non-empty message.
        #[test]
        fn mutated_documents_never_panic(
            template in proptest::sample::select(TEMPLATES.to_vec()),
            replacements in proptest::collection::vec(
                proptest::option::weighted(0.15, arb_leaf()), 80),
        ) {
            let mut doc = crate::format::parse_yaml_value(template).expect("template");
            replace_leaves(&mut doc, &mut replacements.into_iter());
            if let Ok(r) = crate::format::resource_from_value(&doc) {
                if let Err(e) = validate(&r) {
                    proptest::prop_assert!(!e.violations.is_empty());
                    proptest::prop_assert!(e.violations.iter().all(|v| !v.message.is_empty()));
                }
                let _ = warnings(&r);
            }
        }
    }

    #[test]
    fn templates_are_parseable() {
        // Some templates are deliberately invalid (every field set); they must still parse.
        for t in TEMPLATES {
            let _ = parse(t);
        }
    }

    #[test]
    fn base64_check() {
        for good in ["", "YQ==", "YWI=", "YWJj", "aGVsbG8gd29ybGQ=", "+/+/"] {
            assert!(is_base64(good), "{good}");
        }
        for bad in [
            "Y", "YQ=", "Y===", "YQ==YQ==", "a-b_", "YW=j", "é123", "YWJj\n",
        ] {
            assert!(!is_base64(bad), "{bad}");
        }
    }

    #[test]
    fn dns_name_check() {
        for good in ["example.com", "localhost", "a_b.example.com.", "web-1.svc"] {
            assert!(is_dns_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        for bad in ["", ".", "-a.com", "a..b", "a b", "a/b", long_label.as_str()] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn helpers_format_like_kuma() {
        assert_eq!(
            key_path("tags", "kuma.io/service"),
            "tags[\"kuma.io/service\"]"
        );
        assert_eq!(one_of(&["A", "B"]), "must be one of A, B");
        let mut errs = ValidationError::new();
        check_port(&mut errs, "p", 65535);
        check_port(&mut errs, "p", 1);
        assert!(errs.is_empty());
        check_port(&mut errs, "p", 65536);
        assert_eq!(errs.violations[0].message, PORT_RANGE);
    }
}
