//! Delta computation, without I/O: what the sender wants the receiver to hold, against what
//! the receiver is known to hold, gives the resources to send and the keys to remove.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::Resource as WireResource;

/// The sender's full desired state: key -> wire resource (with its content version).
pub type Desired = BTreeMap<String, WireResource>;

/// One message's worth of changes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Delta {
    pub upserts: Vec<WireResource>,
    pub removed: Vec<String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removed.is_empty()
    }
}

/// What the receiver holds, as far as the sender knows: key -> version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerState {
    held: HashMap<String, String>,
}

impl PeerState {
    /// Starts from what the receiver said it holds when the stream opened.
    pub fn from_initial(initial: HashMap<String, String>) -> Self {
        PeerState { held: initial }
    }

    /// What to send so that the receiver holds exactly `desired`.
    pub fn diff(&self, desired: &Desired) -> Delta {
        self.diff_all(&[desired])
    }

    /// [`PeerState::diff`] for a desired state kept in parts with disjoint keys (so that a
    /// part that did not change need not be copied into one map).
    pub fn diff_all(&self, parts: &[&Desired]) -> Delta {
        let upserts = parts
            .iter()
            .flat_map(|d| d.iter())
            .filter(|(k, w)| self.held.get(*k) != Some(&w.version))
            .map(|(_, w)| w.clone())
            .collect();
        let mut removed: Vec<String> = self
            .held
            .keys()
            .filter(|k| !parts.iter().any(|d| d.contains_key(*k)))
            .cloned()
            .collect();
        removed.sort();
        Delta { upserts, removed }
    }

    /// Records that `delta` was sent. A receiver that cannot apply one resource says so in
    /// its NACK and the sender does not resend it until it changes: resending the same bad
    /// content would fail the same way.
    pub fn commit(&mut self, delta: &Delta) {
        for w in &delta.upserts {
            self.held.insert(w.name.clone(), w.version.clone());
        }
        for k in &delta.removed {
            self.held.remove(k);
        }
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, version: &str) -> WireResource {
        WireResource {
            name: name.into(),
            version: version.into(),
            ..WireResource::default()
        }
    }

    fn desired(items: &[(&str, &str)]) -> Desired {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), w(k, v)))
            .collect()
    }

    #[test]
    fn only_differences_travel() {
        let initial = HashMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "1".to_string()),
            ("gone".to_string(), "1".to_string()),
        ]);
        let mut peer = PeerState::from_initial(initial);
        let want = desired(&[("a", "1"), ("b", "2"), ("new", "1")]);
        let delta = peer.diff(&want);
        let names: Vec<&str> = delta.upserts.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["b", "new"]);
        assert_eq!(delta.removed, ["gone"]);
        peer.commit(&delta);
        assert!(peer.diff(&want).is_empty(), "nothing left to send");
        assert_eq!(peer.len(), 3);
    }

    #[test]
    fn parts_diff_like_their_union() {
        let peer = PeerState::from_initial(HashMap::from([
            ("a".to_string(), "1".to_string()),
            ("Online/x".to_string(), "1".to_string()),
        ]));
        let resources = desired(&[("a", "2"), ("b", "1")]);
        let volatile = desired(&[("Online/y", "1")]);
        let mut union = resources.clone();
        union.extend(volatile.clone());
        let names = |d: &Delta| {
            let mut n: Vec<String> = d.upserts.iter().map(|w| w.name.clone()).collect();
            n.sort();
            (n, d.removed.clone())
        };
        let by_parts = peer.diff_all(&[&resources, &volatile]);
        assert_eq!(names(&by_parts), names(&peer.diff(&union)));
        assert_eq!(
            names(&by_parts),
            (
                vec!["Online/y".to_string(), "a".into(), "b".into()],
                vec!["Online/x".to_string()]
            )
        );
    }

    #[test]
    fn an_empty_receiver_gets_everything_and_an_empty_sender_removes_everything() {
        let mut peer = PeerState::default();
        let want = desired(&[("a", "1"), ("b", "1")]);
        let delta = peer.diff(&want);
        assert_eq!(delta.upserts.len(), 2);
        peer.commit(&delta);
        let delta = peer.diff(&Desired::new());
        assert_eq!(delta.removed, ["a", "b"]);
        peer.commit(&delta);
        assert!(peer.is_empty());
    }
}
