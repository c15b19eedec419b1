//! Kuma's `SingleItemRules`: a policy kind that configures the whole proxy (MeshMetric,
//! MeshTrace) from the `default` of every policy whose top-level `targetRef` selects it,
//! merged in priority order (lowest first) as JSON merge patches.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::catalog::Catalog;
use super::index::RulesIndex;
use super::merge::merge_confs;
use super::source::{RulesSource, build_index};
use super::types::DataplaneView;
use super::types::Options;
use crate::spec::Tags;

/// A single-item policy body: its `default` as JSON and the type it merges into.
pub trait SingleItem: RulesSource {
    type Conf: DeserializeOwned;
    fn default_json(&self) -> Value;
}

/// A mesh's policies of one single-item kind, indexed once; [`SingleItemRules::merged`]
/// per proxy.
pub struct SingleItemRules<S> {
    index: RulesIndex,
    /// Each policy's `default`, by name.
    confs: HashMap<String, Value>,
    kind: PhantomData<fn() -> S>,
}

impl<S: SingleItem> SingleItemRules<S> {
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &S)]) -> Self {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    pub fn with_catalog(mesh: &str, policies: &[(&str, &Tags, &S)], catalog: Catalog) -> Self {
        SingleItemRules {
            index: build_index(mesh, policies, catalog, Options::default()),
            confs: policies
                .iter()
                .map(|(name, _, s)| (name.to_string(), s.default_json()))
                .collect(),
            kind: PhantomData,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The policies selecting `dp`, lowest priority first, and their merged `default`.
    pub fn merged(&self, dp: &DataplaneView<'_>) -> (Vec<String>, Option<S::Conf>) {
        if self.index.is_empty() {
            return (Vec::new(), None);
        }
        let names = self.index.resolve(dp).policies;
        let confs = names
            .iter()
            .filter_map(|n| self.confs.get(n))
            .filter(|c| !c.is_null());
        let conf = merge_confs(confs).and_then(|v| serde_json::from_value::<S::Conf>(v).ok());
        (names, conf)
    }
}

// By hand: derives would ask `S` for `Default`, `Clone` and `Debug`.
impl<S> Default for SingleItemRules<S> {
    fn default() -> Self {
        SingleItemRules {
            index: RulesIndex::default(),
            confs: HashMap::new(),
            kind: PhantomData,
        }
    }
}

impl<S> Clone for SingleItemRules<S> {
    fn clone(&self) -> Self {
        SingleItemRules {
            index: self.index.clone(),
            confs: self.confs.clone(),
            kind: PhantomData,
        }
    }
}

impl<S> fmt::Debug for SingleItemRules<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleItemRules")
            .field("index", &self.index)
            .field("confs", &self.confs)
            .finish()
    }
}
