//! The two document formats Aerie reads (Universal and Kubernetes) and the one it writes
//! (Universal), in YAML or JSON.
//!
//! Parsing is split in two steps with different errors, like kumactl's: reading the
//! metadata (`type`, `name`, `mesh`: [`DocumentError::Meta`]) and reading the typed body
//! ([`DocumentError::Parse`], with the path of the offending field). Semantic checks are
//! [`crate::validate`]'s job.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::DEFAULT_MESH;
use crate::resource::{Meta, Resource, ResourceType, Scope, Shape, Spec, SpecDecoder};
use crate::spec::MESH_LABEL;
use crate::violation::ValidationError;

/// The only Kubernetes API version of Kuma's CRDs.
pub const K8S_API_VERSION: &str = "kuma.io/v1alpha1";

/// Why one document could not become a [`Resource`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// The text is not YAML/JSON; the message carries line and column.
    #[error("{0}")]
    Syntax(String),
    /// `type`/`kind`, `name` or `mesh` is missing or wrong.
    #[error("failed to read meta: {0}")]
    Meta(ValidationError),
    /// The body does not have the type's structure.
    #[error("failed to parse resource: {0}")]
    Parse(ValidationError),
}

/// Splits YAML (or JSON, which is YAML) text into documents, skipping empty ones.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    // YAML 1.2 booleans only: `n`, `no`, `on` stay strings (a namespace called `n` is a name,
    // not `false`). Duplicate keys are an error (serde-saphyr's default).
    let options = serde_saphyr::options! { strict_booleans: true };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| DocumentError::Syntax(one_line(&e.to_string())))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Parses one YAML document (exactly one).
pub fn parse_yaml_value(text: &str) -> Result<Value, DocumentError> {
    let mut docs = parse_yaml_documents(text)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        0 => Err(DocumentError::Syntax("the document is empty".into())),
        n => Err(DocumentError::Syntax(format!(
            "expected one document, found {n}"
        ))),
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a Universal or Kubernetes document. Kubernetes documents are recognised by
/// `apiVersion`; their `metadata.namespace` is ignored (Universal has no namespaces).
pub fn resource_from_value(doc: &Value) -> Result<Resource, DocumentError> {
    let obj = doc.as_object().ok_or_else(|| {
        DocumentError::Meta(ValidationError::single(
            "",
            "the document must be a mapping of fields",
        ))
    })?;
    if obj.contains_key("apiVersion") || obj.contains_key("kind") {
        from_kubernetes(obj)
    } else {
        from_universal(obj)
    }
}

/// Metadata keys of a Universal document; everything else is the body.
const UNIVERSAL_META_KEYS: [&str; 6] = [
    "type",
    "name",
    "mesh",
    "labels",
    "creationTime",
    "modificationTime",
];

fn from_universal(obj: &Map<String, Value>) -> Result<Resource, DocumentError> {
    let mut errs = ValidationError::new();
    let rtype = match obj.get("type") {
        None | Some(Value::Null) => {
            errs.add("type", "cannot be empty");
            None
        }
        Some(Value::String(t)) => match ResourceType::from_name(t) {
            Some(rt) => Some(rt),
            None => {
                errs.add("type", format!("unknown resource type \"{t}\""));
                None
            }
        },
        Some(_) => {
            errs.add("type", "must be a string");
            None
        }
    };
    let name = read_string(obj.get("name"), "name", &mut errs);
    let mesh = read_string(obj.get("mesh"), "mesh", &mut errs);
    let labels = read_labels(obj.get("labels"), "labels", &mut errs);
    let Some(rtype) = rtype else {
        return Err(DocumentError::Meta(errs));
    };
    let meta = build_meta(rtype, name, mesh, labels, "mesh", &mut errs);
    if !errs.is_empty() {
        return Err(DocumentError::Meta(errs));
    }
    let spec = match rtype.shape() {
        Shape::Flat => {
            let body: Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| !UNIVERSAL_META_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            typed_spec(rtype, Value::Object(body), "")?
        }
        Shape::Spec => {
            let mut perrs = ValidationError::new();
            for k in obj.keys() {
                if !UNIVERSAL_META_KEYS.contains(&k.as_str()) && k != "spec" && k != "status" {
                    perrs.add(k.as_str(), format!("unknown field `{k}`, expected `spec`"));
                }
            }
            if !perrs.is_empty() {
                return Err(DocumentError::Parse(perrs));
            }
            typed_spec(
                rtype,
                obj.get("spec").cloned().unwrap_or(Value::Null),
                "spec",
            )?
        }
    };
    Ok(Resource { meta, spec })
}

fn from_kubernetes(obj: &Map<String, Value>) -> Result<Resource, DocumentError> {
    let mut errs = ValidationError::new();
    match obj.get("apiVersion") {
        Some(Value::String(v)) if v == K8S_API_VERSION => {}
        Some(Value::String(v)) => errs.add(
            "apiVersion",
            format!("unsupported value \"{v}\", expected \"{K8S_API_VERSION}\""),
        ),
        _ => errs.add("apiVersion", format!("must be \"{K8S_API_VERSION}\"")),
    }
    let rtype = match obj.get("kind") {
        Some(Value::String(k)) => match ResourceType::from_name(k) {
            Some(rt) => Some(rt),
            None => {
                errs.add("kind", format!("unknown resource kind \"{k}\""));
                None
            }
        },
        _ => {
            errs.add("kind", "cannot be empty");
            None
        }
    };
    let empty = Map::new();
    let metadata = match obj.get("metadata") {
        Some(Value::Object(m)) => m,
        _ => {
            errs.add("metadata", "must be a mapping with at least `name`");
            &empty
        }
    };
    let name = read_string(metadata.get("name"), "metadata.name", &mut errs);
    let labels = read_labels(metadata.get("labels"), "metadata.labels", &mut errs);
    for k in obj.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "mesh", "status"].contains(&k.as_str()) {
            errs.add(k.as_str(), format!("unknown field `{k}`"));
        }
    }
    let Some(rtype) = rtype else {
        return Err(DocumentError::Meta(errs));
    };
    // Proto-based namespaced types carry `mesh` at the top level; policies use a label.
    let (mesh, mesh_field) = match rtype.shape() {
        Shape::Flat => (read_string(obj.get("mesh"), "mesh", &mut errs), "mesh"),
        Shape::Spec => (
            labels.get(MESH_LABEL).cloned(),
            "metadata.labels[\"kuma.io/mesh\"]",
        ),
    };
    let meta = build_meta(rtype, name, mesh, labels, mesh_field, &mut errs);
    if !errs.is_empty() {
        return Err(DocumentError::Meta(errs));
    }
    let spec = typed_spec(
        rtype,
        obj.get("spec").cloned().unwrap_or(Value::Null),
        "spec",
    )?;
    Ok(Resource { meta, spec })
}

fn read_string(v: Option<&Value>, field: &str, errs: &mut ValidationError) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.add(field, "must be a string");
            None
        }
    }
}

fn read_labels(
    v: Option<&Value>,
    field: &str,
    errs: &mut ValidationError,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    _ => errs.add(format!("{field}[\"{k}\"]"), "must be a string"),
                }
            }
        }
        Some(_) => errs.add(field, "must be a mapping of strings"),
    }
    out
}

fn build_meta(
    rtype: ResourceType,
    name: Option<String>,
    mesh: Option<String>,
    labels: BTreeMap<String, String>,
    mesh_field: &str,
    errs: &mut ValidationError,
) -> Meta {
    let name = name.unwrap_or_default();
    if name.is_empty() {
        errs.add(
            if mesh_field == "mesh" {
                "name"
            } else {
                "metadata.name"
            },
            "cannot be empty",
        );
    }
    let mesh = match rtype.scope() {
        // A universal document names its mesh (Kuma's `ValidateMeta`: `mesh: cannot be
        // empty`); Kubernetes documents default to `default` as Kuma's `kuma.io/mesh` label.
        Scope::Mesh if mesh_field == "mesh" && mesh.as_deref().is_none_or(str::is_empty) => {
            errs.add("mesh", "cannot be empty");
            Some(String::new())
        }
        Scope::Mesh => Some(
            mesh.filter(|m| !m.is_empty())
                .unwrap_or_else(|| DEFAULT_MESH.into()),
        ),
        Scope::Global => {
            if mesh.as_deref().is_some_and(|m| !m.is_empty()) && mesh_field == "mesh" {
                errs.add(
                    "mesh",
                    format!("must not be set: {rtype} is not inside a mesh"),
                );
            }
            None
        }
    };
    Meta {
        name,
        mesh,
        labels,
        ..Meta::default()
    }
}

/// Reads a type's body (the `spec`, or the top-level fields of a flat type) from JSON, as the
/// store keeps it.
pub fn spec_from_value(rtype: ResourceType, body: Value) -> Result<Spec, DocumentError> {
    typed_spec(rtype, body, "")
}

fn typed_spec(rtype: ResourceType, body: Value, prefix: &str) -> Result<Spec, DocumentError> {
    let body = if body.is_null() {
        Value::Object(Map::new())
    } else {
        body
    };
    if !body.is_object() {
        let field = if prefix.is_empty() { "" } else { prefix };
        return Err(DocumentError::Parse(ValidationError::single(
            field,
            "must be a mapping",
        )));
    }
    Spec::decode(rtype, Decoder { body, prefix })
}

/// Reads one typed body from JSON, naming the offending field (`spec.from[0].default`) on error.
struct Decoder<'a> {
    body: Value,
    prefix: &'a str,
}

impl SpecDecoder for Decoder<'_> {
    type Error = DocumentError;

    fn decode<T: DeserializeOwned>(self) -> Result<T, DocumentError> {
        let prefix = self.prefix;
        serde_path_to_error::deserialize(self.body).map_err(|e| {
            let path = e.path().to_string();
            let field = match (prefix.is_empty(), path.as_str()) {
                (_, ".") if prefix.is_empty() => String::new(),
                (_, ".") => prefix.to_string(),
                (true, p) => p.to_string(),
                (false, p) => format!("{prefix}.{p}"),
            };
            DocumentError::Parse(ValidationError::single(field, e.into_inner().to_string()))
        })
    }
}

/// The typed body as a JSON object (empty object for an empty body).
pub fn spec_to_value(spec: &Spec) -> Value {
    let v = spec.to_json();
    // Serialising plain structs of strings, numbers and maps to a Value cannot fail.
    v.unwrap_or_else(|_| Value::Object(Map::new()))
}

/// Writes a resource in Universal format, as the REST API returns it and kumactl prints it.
pub fn resource_to_value(r: &Resource) -> Value {
    let rtype = r.resource_type();
    let mut out = Map::new();
    out.insert("type".into(), Value::String(rtype.name().into()));
    if let Some(mesh) = &r.meta.mesh {
        out.insert("mesh".into(), Value::String(mesh.clone()));
    }
    out.insert("name".into(), Value::String(r.meta.name.clone()));
    if let Some(t) = &r.meta.creation_time {
        out.insert("creationTime".into(), Value::String(t.clone()));
    }
    if let Some(t) = &r.meta.modification_time {
        out.insert("modificationTime".into(), Value::String(t.clone()));
    }
    if !r.meta.labels.is_empty() || rtype.shape() == Shape::Spec {
        let labels = r
            .meta
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())));
        out.insert("labels".into(), Value::Object(labels.collect()));
    }
    match (rtype.shape(), spec_to_value(&r.spec)) {
        (Shape::Flat, Value::Object(fields)) => out.extend(fields),
        (_, body) => {
            out.insert("spec".into(), body);
        }
    }
    Value::Object(out)
}

/// Renders a JSON value as YAML (block style, two-space indent, lists compact like kubectl).
pub fn to_yaml(v: &Value) -> String {
    // A serde_json::Value has only strings, numbers, bools, nulls, lists and maps: always
    // representable in YAML, so the error arm is unreachable in practice.
    serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# cannot render YAML: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MeshSpec;

    const SEED_MESH: &str = "type: Mesh\nname: default\nmtls:\n  backends:\n    - name: builtin\n      type: builtin\n  enabledBackend: builtin\n";

    #[test]
    fn universal_mesh_round_trips() {
        let doc = parse_yaml_value(SEED_MESH).unwrap();
        let r = resource_from_value(&doc).unwrap();
        assert_eq!(r.resource_type(), ResourceType::Mesh);
        assert_eq!(r.meta.mesh, None);
        let Spec::Mesh(m) = &r.spec else {
            panic!("not a mesh")
        };
        assert!(m.mtls_enabled());
        let back = resource_to_value(&r);
        assert_eq!(back["mtls"]["enabledBackend"], "builtin");
        let again = resource_from_value(&back).unwrap();
        assert_eq!(again, r);
        let yaml = to_yaml(&back);
        assert!(yaml.contains("mtls:\n  backends:\n  - name: builtin\n    type: builtin\n  enabledBackend: builtin"), "{yaml}");
    }

    #[test]
    fn kubernetes_policy_takes_mesh_from_label_and_ignores_namespace() {
        let text = "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata:\n  name: allow-all\n  namespace: kong-mesh-system\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Allow\n";
        let r = resource_from_value(&parse_yaml_value(text).unwrap()).unwrap();
        assert_eq!(r.meta.name, "allow-all");
        assert_eq!(r.meta.mesh.as_deref(), Some("default"));
        let v = resource_to_value(&r);
        assert_eq!(v["spec"]["from"][0]["default"]["action"], "Allow");
        assert_eq!(resource_from_value(&v).unwrap(), r);
    }

    #[test]
    fn kubernetes_mesh_reads_spec() {
        let text = "apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  mtls:\n    backends:\n      - name: builtin\n        type: builtin\n    enabledBackend: builtin\n";
        let r = resource_from_value(&parse_yaml_value(text).unwrap()).unwrap();
        let Spec::Mesh(m) = r.spec else { panic!() };
        assert_eq!(m.enabled_mtls_backend().unwrap().backend_type, "builtin");
    }

    /// Kuma's `ValidateMeta`: a universal document of a mesh-scoped type names its mesh.
    #[test]
    fn a_mesh_scoped_document_without_a_mesh_is_refused() {
        for text in [
            "type: MeshTimeout\nname: t\nspec: {}\n",
            "type: MeshTimeout\nname: t\nmesh: \"\"\nspec: {}\n",
        ] {
            let err = resource_from_value(&parse_yaml_value(text).unwrap()).unwrap_err();
            let DocumentError::Meta(v) = err else {
                panic!("{err:?}")
            };
            assert_eq!(v.to_string(), "mesh: cannot be empty", "{text}");
        }
        // A global type needs none; a Kubernetes document defaults to `default`.
        assert!(resource_from_value(&parse_yaml_value("type: Mesh\nname: m\n").unwrap()).is_ok());
        let k8s =
            "apiVersion: kuma.io/v1alpha1\nkind: MeshTimeout\nmetadata:\n  name: t\nspec: {}\n";
        let r = resource_from_value(&parse_yaml_value(k8s).unwrap()).unwrap();
        assert_eq!(r.mesh(), "default");
    }

    #[test]
    fn unknown_field_names_its_path() {
        let text = "type: MeshTrafficPermission\nname: x\nmesh: default\nspec:\n  from:\n    - targetRef: {kind: Mesh}\n      default: {acton: Allow}\n";
        let err = resource_from_value(&parse_yaml_value(text).unwrap()).unwrap_err();
        let DocumentError::Parse(v) = err else {
            panic!("{err:?}")
        };
        assert_eq!(v.violations[0].field, "spec.from[0].default.acton");
        assert!(
            v.violations[0].message.contains("unknown field `acton`"),
            "{v}"
        );
    }

    #[test]
    fn wrong_type_names_its_path() {
        let text = "type: Dataplane\nname: dp\nmesh: default\nnetworking:\n  address: 1.2.3.4\n  inbound:\n  - port: eighty\n";
        let err = resource_from_value(&parse_yaml_value(text).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to parse resource: networking.inbound[0].port: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn meta_errors_are_collected() {
        let err =
            resource_from_value(&parse_yaml_value("type: Nope\nname: 3\n").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read meta: type: unknown resource type \"Nope\"; name: must be a string"
        );
        let err = resource_from_value(&parse_yaml_value("type: Mesh\n").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read meta: name: cannot be empty"
        );
        let err = resource_from_value(&parse_yaml_value("type: Mesh\nname: a\nmesh: b\n").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("mesh: must not be set"));
    }

    #[test]
    fn syntax_errors_carry_a_location() {
        let err = parse_yaml_documents("type: Mesh\nname: [unclosed\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line") || msg.contains(':'), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings_and_duplicate_keys_are_refused() {
        let v = parse_yaml_value("a: n\nb: yes\nc: true\n").unwrap();
        assert_eq!(v, serde_json::json!({"a": "n", "b": "yes", "c": true}));
        assert!(parse_yaml_value("a: 1\na: 2\n").is_err());
    }

    #[test]
    fn multi_document_skips_empty_ones() {
        let docs =
            parse_yaml_documents("---\ntype: Mesh\nname: a\n---\n---\ntype: Mesh\nname: b\n")
                .unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn empty_mesh_is_valid_shape() {
        let r = resource_from_value(&parse_yaml_value("type: Mesh\nname: m\n").unwrap()).unwrap();
        assert_eq!(r.spec, Spec::Mesh(MeshSpec::default()));
        let v = resource_to_value(&r);
        assert_eq!(v, serde_json::json!({"type": "Mesh", "name": "m"}));
    }
}
