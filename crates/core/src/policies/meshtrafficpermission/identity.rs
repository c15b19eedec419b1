//! The caller's identity as the receiving proxy sees it on a verified client certificate.
//!
//! Kuma's legacy identity (which Aerie issues) puts everything in URI SANs: one
//! `spiffe://<mesh>/<service>` per `kuma.io/service` of the workload, plus
//! `kuma://<tag>/<value>` for every tag. Authorization only ever compares against these
//! parsed values, so the parser is strict: a certificate whose SANs we do not fully understand
//! yields no identity at all (and so no access), rather than a partial one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::spec::SERVICE_TAG;

const SPIFFE_PREFIX: &str = "spiffe://";
const KUMA_PREFIX: &str = "kuma://";

/// Who is calling: the mesh, the services and the tags proven by the client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// The mesh of every SPIFFE ID in the certificate (mixed meshes are refused).
    pub mesh: String,
    /// Every `<service>` of `spiffe://<mesh>/<service>`; never empty for a parsed identity.
    pub services: BTreeSet<String>,
    /// `kuma://<tag>/<value>` SANs; a tag may carry several values when the workload has
    /// several inbounds.
    pub tags: BTreeMap<String, BTreeSet<String>>,
}

/// Why a set of URI SANs is not a Kuma identity (for logs; the proxy just denies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate carries no spiffe://<mesh>/<service> URI SAN")]
    NoSpiffeId,
    #[error("malformed URI SAN {0:?}")]
    Malformed(String),
    #[error("URI SANs name more than one mesh ({0:?} and {1:?})")]
    MixedMeshes(String, String),
}

impl PeerIdentity {
    /// An identity in `mesh` for the given services and no tags (handy for tests and tools).
    pub fn new<S: Into<String>>(
        mesh: impl Into<String>,
        services: impl IntoIterator<Item = S>,
    ) -> Self {
        PeerIdentity {
            mesh: mesh.into(),
            services: services.into_iter().map(Into::into).collect(),
            tags: BTreeMap::new(),
        }
    }

    /// Adds one `kuma://<tag>/<value>` fact (builder style).
    pub fn with_tag(mut self, tag: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags
            .entry(tag.into())
            .or_default()
            .insert(value.into());
        self
    }

    /// Parses the URI SANs of a verified client certificate; `None` if they are not a
    /// well-formed, single-mesh Kuma identity. See [`PeerIdentity::parse_uri_sans`].
    pub fn from_uri_sans(sans: &[&str]) -> Option<PeerIdentity> {
        Self::parse_uri_sans(sans).ok()
    }

    /// Like [`PeerIdentity::from_uri_sans`], saying why a certificate was refused.
    ///
    /// Accepted SANs are `spiffe://<mesh>/<service>` (exactly one path segment) and
    /// `kuma://<tag>/<value>`. Tag names may contain `/` (`kuma.io/zone`), values may not
    /// (Kuma's tag value charset), so the value is what follows the last `/`. Any other URI
    /// is refused: certificates come from the mesh CA, so an unknown SAN means something is
    /// wrong and guessing would risk granting access.
    pub fn parse_uri_sans(sans: &[&str]) -> Result<PeerIdentity, IdentityError> {
        let mut id = PeerIdentity::default();
        let mut mesh: Option<&str> = None;
        for &san in sans {
            if let Some(rest) = san.strip_prefix(SPIFFE_PREFIX) {
                let (m, service) = rest
                    .split_once('/')
                    .filter(|(m, s)| valid_segment(m) && valid_segment(s))
                    .ok_or_else(|| IdentityError::Malformed(san.to_owned()))?;
                match mesh {
                    Some(seen) if seen != m => {
                        return Err(IdentityError::MixedMeshes(seen.to_owned(), m.to_owned()));
                    }
                    _ => mesh = Some(m),
                }
                id.services.insert(service.to_owned());
            } else if let Some(rest) = san.strip_prefix(KUMA_PREFIX) {
                let (tag, value) = rest
                    .rsplit_once('/')
                    .filter(|(t, v)| valid_tag_name(t) && valid_segment(v))
                    .ok_or_else(|| IdentityError::Malformed(san.to_owned()))?;
                id.tags
                    .entry(tag.to_owned())
                    .or_default()
                    .insert(value.to_owned());
            } else {
                return Err(IdentityError::Malformed(san.to_owned()));
            }
        }
        id.mesh = mesh.ok_or(IdentityError::NoSpiffeId)?.to_owned();
        Ok(id)
    }

    /// The URI SANs a certificate for this identity carries (the inverse of
    /// [`PeerIdentity::parse_uri_sans`]), in a stable order.
    pub fn to_uri_sans(&self) -> Vec<String> {
        let spiffe = self
            .services
            .iter()
            .map(|s| format!("{SPIFFE_PREFIX}{}/{s}", self.mesh));
        let tags = self
            .tags
            .iter()
            .flat_map(|(t, vs)| vs.iter().map(move |v| format!("{KUMA_PREFIX}{t}/{v}")));
        spiffe.chain(tags).collect()
    }

    /// Whether the identity proves `tag: value`. `kuma.io/service` is answered from the SPIFFE
    /// IDs only: they are what Kuma's RBAC principals match for the service, and a `kuma://`
    /// SAN must not be able to claim a service the SPIFFE IDs do not.
    pub fn has_tag(&self, tag: &str, value: &str) -> bool {
        if tag == SERVICE_TAG {
            self.services.contains(value)
        } else {
            self.tags.get(tag).is_some_and(|vs| vs.contains(value))
        }
    }
}

/// A mesh, service or tag value: non-empty, one path segment, nothing URI-special.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(['/', '?', '#', '%'])
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A tag name: like a segment, but `/` is allowed inside (`kuma.io/zone`), not at the ends.
fn valid_tag_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('/') && !s.ends_with('/') && s.split('/').all(valid_segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spiffe_and_tags() {
        let id = PeerIdentity::from_uri_sans(&[
            "spiffe://default/web",
            "spiffe://default/web-admin",
            "kuma://kuma.io/zone/zone-1",
            "kuma://version/v1",
            "kuma://version/v2",
        ])
        .expect("valid identity");
        assert_eq!(id.mesh, "default");
        assert_eq!(
            id.services,
            BTreeSet::from(["web".into(), "web-admin".into()])
        );
        assert!(id.has_tag("kuma.io/zone", "zone-1"));
        assert!(id.has_tag("version", "v2"));
        assert!(id.has_tag(SERVICE_TAG, "web"));
        assert!(!id.has_tag("version", "v3"));
    }

    #[test]
    fn service_tag_comes_from_spiffe_only() {
        let id =
            PeerIdentity::from_uri_sans(&["spiffe://default/web", "kuma://kuma.io/service/admin"])
                .expect("valid identity");
        assert!(id.has_tag(SERVICE_TAG, "web"));
        assert!(!id.has_tag(SERVICE_TAG, "admin"));
    }

    #[test]
    fn rejects_malformed_and_mixed() {
        use IdentityError::*;
        let cases: &[(&[&str], IdentityError)] = &[
            (&[], NoSpiffeId),
            (&["kuma://version/v1"], NoSpiffeId),
            (&["spiffe://default"], Malformed("spiffe://default".into())),
            (
                &["spiffe://default/"],
                Malformed("spiffe://default/".into()),
            ),
            (&["spiffe:///web"], Malformed("spiffe:///web".into())),
            (
                &["spiffe://default/ns/x"],
                Malformed("spiffe://default/ns/x".into()),
            ),
            (
                &["spiffe://default/web?x"],
                Malformed("spiffe://default/web?x".into()),
            ),
            (
                &["SPIFFE://default/web"],
                Malformed("SPIFFE://default/web".into()),
            ),
            (
                &["https://default/web"],
                Malformed("https://default/web".into()),
            ),
            (
                &["spiffe://default/web", "kuma://version"],
                Malformed("kuma://version".into()),
            ),
            (
                &["spiffe://default/web", "kuma:///v1"],
                Malformed("kuma:///v1".into()),
            ),
            (
                &["spiffe://default/web", "kuma://version/"],
                Malformed("kuma://version/".into()),
            ),
            (
                &["spiffe://default/web", "spiffe://other/web"],
                MixedMeshes("default".into(), "other".into()),
            ),
        ];
        for (sans, err) in cases {
            assert_eq!(
                PeerIdentity::parse_uri_sans(sans).as_ref(),
                Err(err),
                "{sans:?}"
            );
            assert_eq!(PeerIdentity::from_uri_sans(sans), None);
        }
    }

    #[test]
    fn round_trips_through_sans() {
        let id = PeerIdentity::new("m", ["a", "b"])
            .with_tag("kuma.io/zone", "z")
            .with_tag("v", "1");
        let sans = id.to_uri_sans();
        let refs: Vec<&str> = sans.iter().map(String::as_str).collect();
        assert_eq!(PeerIdentity::from_uri_sans(&refs), Some(id));
    }
}
