//! Resource documents as `kumactl apply` and the REST API read them: template variables,
//! `---` splitting, YAML/JSON parsing, the metadata and typed body (`Spec::decode` through
//! `resource_from_value`), validation and warnings. A document that validates must read back
//! from what Aerie writes for it (`kumactl get -o yaml` output re-applied).

use std::collections::BTreeMap;

use aerie_core::format::{
    parse_yaml_documents, parse_yaml_value, resource_from_value, resource_to_value, to_yaml,
};
use aerie_core::validate;
use aerie_ctl::commands::apply::{render_template, split_documents};
use serde_json::Value;

use super::seeds::{KEYS, RESOURCES, YAML_TOKENS};
use crate::{Rng, Target, mutate_bytes, mutate_json};

pub struct Resources {
    texts: Vec<Vec<u8>>,
    values: Vec<Value>,
    vars: BTreeMap<String, String>,
}

impl Resources {
    pub fn new() -> Resources {
        let values = RESOURCES
            .iter()
            .filter_map(|t| parse_yaml_value(t).ok())
            .collect();
        Resources {
            texts: RESOURCES.iter().map(|t| t.as_bytes().to_vec()).collect(),
            values,
            vars: [("var".to_string(), "value".to_string())].into(),
        }
    }
}

impl Default for Resources {
    fn default() -> Self {
        Self::new()
    }
}

/// One parsed document through the control plane's checks.
fn check(doc: &Value) {
    let Ok(r) = resource_from_value(doc) else {
        return;
    };
    let _ = validate::warnings(&r);
    if validate::validate(&r).is_err() {
        return;
    }
    // What Aerie writes for a valid resource reads back, and is still valid.
    let written = to_yaml(&resource_to_value(&r));
    let back = parse_yaml_value(&written)
        .map_err(|e| e.to_string())
        .and_then(|v| resource_from_value(&v).map_err(|e| e.to_string()));
    match back {
        Ok(again) => assert!(
            validate::validate(&again).is_ok(),
            "a valid resource is invalid once written and read back:\n{written}"
        ),
        Err(e) => panic!("a valid resource does not read back ({e}):\n{written}"),
    }
}

impl Target for Resources {
    fn name(&self) -> &'static str {
        "resources"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let structured = rng.chance(60);
        let mut docs = Vec::new();
        for _ in 0..1 + usize::from(rng.chance(15)) {
            if structured {
                let Some(mut v) = rng.pick(&self.values).cloned() else {
                    return Vec::new();
                };
                mutate_json(&mut v, rng, KEYS);
                docs.push(if rng.chance(70) {
                    to_yaml(&v).into_bytes()
                } else {
                    serde_json::to_vec(&v).unwrap_or_default()
                });
            } else {
                let Some(mut text) = rng.pick(&self.texts).cloned() else {
                    return Vec::new();
                };
                let other = rng.pick(&self.texts).cloned().unwrap_or_default();
                mutate_bytes(&mut text, rng, YAML_TOKENS, &other);
                docs.push(text);
            }
        }
        docs.join(&b"---\n"[..])
    }

    fn run(&mut self, input: &[u8]) {
        let text = String::from_utf8_lossy(input);
        // `kumactl apply -f`: variables, documents, YAML.
        if let Ok(text) = render_template(&text, &self.vars) {
            for (first_line, chunk) in split_documents(&text) {
                let padded = format!("{}{}", "\n".repeat(first_line), chunk);
                if let Ok(docs) = parse_yaml_documents(&padded) {
                    docs.iter().for_each(check);
                }
            }
        }
        // `PUT /meshes/...` and KDS payloads: JSON.
        if let Ok(doc) = serde_json::from_slice::<Value>(input) {
            check(&doc);
        }
    }
}
