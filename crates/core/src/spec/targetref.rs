use serde::{Deserialize, Serialize};

use super::Tags;

/// A reference to proxies or services (`api/common/v1alpha1/targetref.go`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "scalar_tags"
    )]
    pub labels: Option<Tags>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "scalar_tags"
    )]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
}

/// A traffic predicate of the `rules` form (`api/common/v1alpha1/match.go`): the caller's
/// SPIFFE ID and/or the SNI it asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    #[serde(default, rename = "spiffeID", skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<ValueMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<ValueMatch>,
}

/// `{type, value}`: `Exact`/`Prefix` for SPIFFE IDs, `Exact` for SNI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatch {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

/// Tag and label values of a policy reference, read as Kuma reads them: its YAML decoder
/// turns an unquoted number or boolean into the string the field expects (`port: 6000` is
/// the tag `port=6000`). A null value or a nested value is refused.
pub(crate) fn scalar_tags<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Tags>, D::Error> {
    use serde::de::Error as _;
    let Some(map) =
        Option::<std::collections::BTreeMap<String, serde_json::Value>>::deserialize(d)?
    else {
        return Ok(None);
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(D::Error::custom(format!(
                        "invalid value {other} for \"{k}\": expected a string"
                    )));
                }
            };
            Ok((k, v))
        })
        .collect::<Result<Tags, D::Error>>()
        .map(Some)
}
