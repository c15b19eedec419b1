//! Merging confs: RFC 7386 JSON merge patch, applied the way Kuma's
//! `pkg/plugins/policies/core/rules/merge/merge.go` applies it.
//!
//! Kuma merges *typed* confs: each `default` is a Go struct whose unset fields are nil
//! pointers omitted on marshalling. So a `null` written by a user never reaches the patch and
//! cannot delete what a lower-priority policy set; [`merge_confs`] reproduces that by
//! dropping object members whose value is `null` before patching ([`strip_nulls`]). The bare
//! [`merge_patch`] keeps the RFC's meaning (`null` deletes) and is what the tests pin down.
//!
//! Kuma also appends, instead of replacing, every list held in a struct field whose Go name
//! starts with `Append` (JSON `appendProfiles`, `appendMatch`, `appendModifications`, ...):
//! the merged list is the concatenation of that list from every conf, lowest priority first.
//! Here that is any object member named `append` + an upper-case letter, at any depth
//! reachable through objects. The `policyMerge` tags (`mergeValuesByKey`, `mergeValues`,
//! `mergeKey`) exist only on MeshHTTPRoute's conf and are not implemented.

use serde_json::{Map, Value};

/// RFC 7386 `MergePatch(target, patch)`, in place: an object patch merges member by
/// member (`null` removes the member, objects recurse); anything else replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
            continue;
        }
        match target.get_mut(key) {
            Some(existing) => merge_patch(existing, value),
            None => {
                let mut fresh = Value::Null;
                merge_patch(&mut fresh, value);
                target.insert(key.clone(), fresh);
            }
        }
    }
}

/// A copy of `conf` without `null` object members (recursively, also inside arrays): what a
/// Go conf struct marshals back to after decoding it.
pub fn strip_nulls(conf: &Value) -> Value {
    match conf {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Kuma's `merge.Confs` for one conf type: `confs` from lowest to highest priority, each
/// already passed through [`strip_nulls`] (the engine normalises confs once, when it indexes
/// policies). `None` when there is nothing to merge.
pub fn merge_confs<'a, I>(confs: I) -> Option<Value>
where
    I: IntoIterator<Item = &'a Value>,
    I::IntoIter: Clone,
{
    let confs = confs.into_iter();
    let mut iter = confs.clone();
    let mut result = iter.next()?.clone();
    for conf in iter {
        merge_patch(&mut result, conf);
    }
    // Append-lists: start empty, then concatenate every conf's list in order. (A list the
    // result does not hold cannot receive anything: skip the walk when there is none.)
    if has_append_list(&result) {
        clear_append_lists(&mut result);
        for conf in confs {
            append_lists(&mut result, conf);
        }
    }
    Some(result)
}

/// `appendProfiles`, `appendMatch`, ...: Go's `Append*` fields, camel-cased.
pub fn is_append_key(key: &str) -> bool {
    key.strip_prefix("append")
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_uppercase())
}

fn has_append_list(value: &Value) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    map.iter().any(|(key, member)| match member {
        Value::Array(_) => is_append_key(key),
        Value::Object(_) => has_append_list(member),
        _ => false,
    })
}

fn clear_append_lists(value: &mut Value) {
    let Value::Object(map) = value else { return };
    for (key, member) in map.iter_mut() {
        match member {
            Value::Array(items) if is_append_key(key) => items.clear(),
            Value::Object(_) => clear_append_lists(member),
            _ => {}
        }
    }
}

fn append_lists(dst: &mut Value, src: &Value) {
    let (Value::Object(dst), Value::Object(src)) = (dst, src) else {
        return;
    };
    for (key, member) in dst.iter_mut() {
        let Some(from) = src.get(key) else { continue };
        match (member, from) {
            (Value::Array(items), Value::Array(more)) if is_append_key(key) => {
                items.extend(more.iter().cloned());
            }
            (member @ Value::Object(_), Value::Object(_)) => append_lists(member, from),
            _ => {}
        }
    }
}
