//! YAML and JSON rendering of resources and lists, in the Universal format the API returns.

use serde_json::{Map, Value};

/// One value as YAML (always ends with a newline).
pub fn to_yaml(v: &Value) -> String {
    let mut s = aerie_core::format::to_yaml(v);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Pretty JSON like kumactl's (two-space indent, trailing newline).
pub fn to_json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// Kuma's list shape, `{items, next, total}`, in that order.
pub fn list_value(items: &[Value], next: &Value, total: u64) -> Value {
    let mut m = Map::new();
    m.insert("items".into(), Value::Array(items.to_vec()));
    m.insert("next".into(), next.clone());
    m.insert("total".into(), Value::from(total));
    Value::Object(m)
}

/// Several documents, separated by `---` lines (`kumactl apply --dry-run`).
pub fn documents(values: &[Value]) -> String {
    values.iter().map(to_yaml).collect::<Vec<_>>().join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_yaml_shows_the_mtls_block() {
        let mesh = json!({"type": "Mesh", "name": "default", "creationTime": "2026-01-01T00:00:00Z",
            "mtls": {"backends": [{"name": "builtin", "type": "builtin"}], "enabledBackend": "builtin"}});
        let out = to_yaml(&list_value(&[mesh], &Value::Null, 1));
        let lines: Vec<&str> = out.lines().collect();
        let at = lines.iter().position(|l| l.trim() == "mtls:").expect(&out);
        let block = lines[at..at + 5]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>();
        assert_eq!(
            block,
            [
                "mtls:",
                "backends:",
                "- name: builtin",
                "type: builtin",
                "enabledBackend: builtin"
            ],
            "{out}"
        );
        assert!(out.starts_with("items:\n"), "{out}");
        assert!(out.contains("\ntotal: 1\n"), "{out}");
    }

    #[test]
    fn documents_are_separated() {
        let out = documents(&[json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(out, "a: 1\n---\nb: 2\n");
        assert_eq!(to_json(&json!({"a": 1})), "{\n  \"a\": 1\n}\n");
    }
}
