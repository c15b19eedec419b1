//! Kuma Resource Identifiers (`pkg/core/kri`): one string naming a resource, or a section
//! of it (a port of a MeshService, an inbound of a Dataplane), across zones and
//! namespaces:
//!
//! ```text
//! kri_<shortName>_<mesh>_<zone>_<namespace>_<name>_<sectionName>
//! ```
//!
//! `shortName` is the type's [`crate::TypeDescriptor::short_name`] (`dp`, `msvc`, `mt`...;
//! types without one have no KRI), `zone` and `namespace` come from the `kuma.io/zone` and
//! `k8s.kuma.io/namespace` labels, `name` is the display name (`kuma.io/display-name`, else
//! the name). Empty parts stay empty: a policy of mesh `default` created on a standalone
//! control plane is `kri_mt_default___my-timeouts_`.
//!
//! Parsing is Kuma's `kri.FromString`: split on `_`, at least seven parts, `kri` first, a
//! known short name second; everything after the sixth `_` is the section name, its own
//! underscores dropped (Kuma joins the rest with nothing). Errors carry Kuma's messages,
//! which its API answers with (`bad request: <message>`).

use std::fmt;

use crate::resource::{Resource, ResourceType};
use crate::spec::Tags;

/// `kuma.io/zone`.
const ZONE_LABEL: &str = "kuma.io/zone";
/// `k8s.kuma.io/namespace`.
const NAMESPACE_LABEL: &str = "k8s.kuma.io/namespace";
/// `kuma.io/display-name`.
const DISPLAY_NAME_LABEL: &str = "kuma.io/display-name";

/// A parsed or computed KRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kri {
    pub rtype: ResourceType,
    pub mesh: String,
    pub zone: String,
    pub namespace: String,
    /// The display name.
    pub name: String,
    /// A port name or number, an inbound's name or port; empty for the whole resource.
    pub section: String,
}

/// Why a string is not a KRI; `Display` is Kuma's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KriError {
    /// Fewer than seven `_`-separated parts.
    Invalid(String),
    /// The first part is not `kri`.
    NoPrefix(String),
    /// The second part names no type.
    UnknownShortName(String),
}

impl fmt::Display for KriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KriError::Invalid(s) => write!(f, "invalid identifier string: {}", go_quote(s)),
            KriError::NoPrefix(s) => {
                write!(f, "identifier must start with 'kri': {}", go_quote(s))
            }
            KriError::UnknownShortName(s) => {
                write!(f, "unknown short name of resource type: {}", go_quote(s))
            }
        }
    }
}

impl std::error::Error for KriError {}

impl Kri {
    /// The KRI of a resource of type `rtype` (`kri.FromResourceMeta`); `None` for types
    /// without a short name.
    pub fn of(rtype: ResourceType, mesh: &str, name: &str, labels: &Tags) -> Option<Kri> {
        if rtype.short_name().is_empty() {
            return None;
        }
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let display = match labels.get(DISPLAY_NAME_LABEL) {
            Some(d) if !d.is_empty() => d.clone(),
            _ => name.to_owned(),
        };
        Some(Kri {
            rtype,
            mesh: mesh.to_owned(),
            zone: label(ZONE_LABEL),
            namespace: label(NAMESPACE_LABEL),
            name: display,
            section: String::new(),
        })
    }

    /// The KRI of a stored resource.
    pub fn for_resource(r: &Resource) -> Option<Kri> {
        Kri::of(r.resource_type(), r.mesh(), r.name(), &r.meta.labels)
    }

    /// The same identifier narrowed to a section (`kri.WithSectionName`).
    pub fn with_section(mut self, section: impl Into<String>) -> Kri {
        self.section = section.into();
        self
    }

    /// The whole resource (`kri.NoSectionName`).
    pub fn without_section(&self) -> Kri {
        Kri {
            section: String::new(),
            ..self.clone()
        }
    }

    /// Kuma's `kri.FromString`.
    pub fn parse(s: &str) -> Result<Kri, KriError> {
        let parts: Vec<&str> = s.split('_').collect();
        if parts.len() < 7 {
            return Err(KriError::Invalid(s.to_owned()));
        }
        if parts[0] != "kri" {
            return Err(KriError::NoPrefix(s.to_owned()));
        }
        let rtype = ResourceType::from_short_name(parts[1])
            .ok_or_else(|| KriError::UnknownShortName(parts[1].to_owned()))?;
        Ok(Kri {
            rtype,
            mesh: parts[2].to_owned(),
            zone: parts[3].to_owned(),
            namespace: parts[4].to_owned(),
            name: parts[5].to_owned(),
            section: parts[6..].concat(),
        })
    }
}

impl fmt::Display for Kri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kri_{}_{}_{}_{}_{}_{}",
            self.rtype.short_name(),
            self.mesh,
            self.zone,
            self.namespace,
            self.name,
            self.section
        )
    }
}

impl std::str::FromStr for Kri {
    type Err = KriError;

    fn from_str(s: &str) -> Result<Kri, KriError> {
        Kri::parse(s)
    }
}

/// A string as Go's `%q` writes it: double quotes, `\"` and `\\`, Go's short escapes for
/// control characters, `\xNN`/`\uNNNN` for other unprintable ones, everything else as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn formats_like_kuma() {
        let mt = Kri::of(ResourceType::MeshTimeout, "default", "mt-1", &Tags::new()).unwrap();
        assert_eq!(mt.to_string(), "kri_mt_default___mt-1_");
        let ms = Kri::of(
            ResourceType::MeshService,
            "default",
            "test-server-syncedhash",
            &labels(&[
                ("kuma.io/display-name", "test-server"),
                ("kuma.io/zone", "test-zone"),
                ("k8s.kuma.io/namespace", "kuma-demo"),
            ]),
        )
        .unwrap()
        .with_section("main-port");
        assert_eq!(
            ms.to_string(),
            "kri_msvc_default_test-zone_kuma-demo_test-server_main-port"
        );
        assert_eq!(
            ms.without_section().to_string(),
            "kri_msvc_default_test-zone_kuma-demo_test-server_"
        );
        let dp = Kri::of(
            ResourceType::Dataplane,
            "default",
            "dp-1",
            &labels(&[("kuma.io/zone", "test-zone")]),
        )
        .unwrap()
        .with_section("8080");
        assert_eq!(dp.to_string(), "kri_dp_default_test-zone__dp-1_8080");
        // An empty display name falls back to the name.
        let named = Kri::of(
            ResourceType::MeshRetry,
            "m",
            "r",
            &labels(&[("kuma.io/display-name", "")]),
        )
        .unwrap();
        assert_eq!(named.to_string(), "kri_mr_m___r_");
    }

    #[test]
    fn types_without_a_short_name_have_none() {
        assert_eq!(
            Kri::of(ResourceType::Secret, "default", "s", &Tags::new()),
            None
        );
        assert_eq!(
            Kri::of(ResourceType::GlobalSecret, "", "s", &Tags::new()),
            None
        );
        assert_eq!(ResourceType::from_short_name(""), None);
    }

    #[test]
    fn round_trips() {
        for s in [
            "kri_mt_default___mt-1_",
            "kri_msvc_default_test-zone__test-server-1_main-port",
            "kri_dp_default_test-zone_kuma-demo_demo-app-75ff54499c-ttwd7_http-port",
            "kri_dp_default_test-zone__dp-1_",
            "kri_mtp_default_zone-east_kuma-demo_mypolicy1_",
            "kri_mhttpr_default___the-http-route_",
            "kri_z____zone-1_",
        ] {
            let k = Kri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(k.to_string(), s);
            assert_eq!(s.parse::<Kri>(), Ok(k));
        }
        for t in ResourceType::ALL {
            let Some(k) = Kri::of(t, "mesh-1", "name-1", &Tags::new()) else {
                continue;
            };
            let k = k.with_section("80");
            assert_eq!(Kri::parse(&k.to_string()), Ok(k));
        }
    }

    #[test]
    fn parses_the_parts() {
        let k = Kri::parse("kri_msvc_default_test-zone_ns_test-server-1_main-port").unwrap();
        assert_eq!(k.rtype, ResourceType::MeshService);
        assert_eq!(
            (
                k.mesh.as_str(),
                k.zone.as_str(),
                k.namespace.as_str(),
                k.name.as_str(),
                k.section.as_str()
            ),
            ("default", "test-zone", "ns", "test-server-1", "main-port")
        );
        // Kuma joins what follows the sixth `_` without separators.
        assert_eq!(
            Kri::parse("kri_dp_m___dp_a_b").unwrap().section,
            "ab".to_string()
        );
    }

    #[test]
    fn bad_input_gets_kumas_message() {
        let msg = |s: &str| Kri::parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("invalid-kri"),
            "invalid identifier string: \"invalid-kri\""
        );
        assert_eq!(msg(""), "invalid identifier string: \"\"");
        assert_eq!(
            msg("kri_dp_default"),
            "invalid identifier string: \"kri_dp_default\""
        );
        assert_eq!(
            msg("id_dp_default_test-zone__dp-1_main-port"),
            "identifier must start with 'kri': \"id_dp_default_test-zone__dp-1_main-port\""
        );
        assert_eq!(
            msg("kri_nope_default___x_"),
            "unknown short name of resource type: \"nope\""
        );
        // Secrets have no short name: an empty one names nothing.
        assert_eq!(
            msg("kri__default___x_"),
            "unknown short name of resource type: \"\""
        );
        assert_eq!(
            msg("a\"b\\c\nd\u{1}"),
            "invalid identifier string: \"a\\\"b\\\\c\\nd\\x01\""
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_what_parses_prints_back(s in "\\PC*|(kri_[a-z]{0,6}(_[a-z0-9-]{0,5}){4,7})") {
            if let Ok(k) = Kri::parse(&s) {
                // Printing and parsing again is stable (extra `_` in the section collapse).
                let again = Kri::parse(&k.to_string()).unwrap();
                proptest::prop_assert_eq!(again, k);
            }
        }

        #[test]
        fn every_identifier_round_trips(
            t in proptest::sample::select(ResourceType::ALL.to_vec()),
            mesh in "[a-z0-9-]{0,8}",
            zone in "[a-z0-9-]{0,8}",
            namespace in "[a-z0-9-]{0,8}",
            name in "[a-z0-9.-]{1,12}",
            section in "[a-z0-9-]{0,8}",
        ) {
            if let Some(k) = Kri::of(t, &mesh, &name, &labels(&[("kuma.io/zone", &zone), ("k8s.kuma.io/namespace", &namespace)])) {
                let k = k.with_section(section);
                proptest::prop_assert_eq!(Kri::parse(&k.to_string()), Ok(k));
            }
        }
    }
}
