//! Checks for the `matches` of a `rules` entry (Kuma's `ValidateMatch` and the SPIFFE ID
//! syntax of go-spiffe's `spiffeid.FromString`).

use crate::ValidationError;
use crate::spec::Match;

/// Checks one match; paths are relative to it (`spiffeID`, `sni.type`).
pub(crate) fn validate_match(m: &Match) -> ValidationError {
    let mut errs = ValidationError::new();
    if let Some(id) = &m.spiffe_id
        && let Err(e) = parse_spiffe_id(&id.value)
    {
        errs.add("spiffeID", format!("must be a valid Spiffe ID: {e}"));
    }
    if let Some(sni) = &m.sni {
        match sni.kind.as_str() {
            "Exact" => {}
            "" => errs.add("sni.type", "must be set"),
            other => errs.add(
                "sni.type",
                format!("unrecognized type {other:?}, supported values are: Exact"),
            ),
        }
        if sni.value.is_empty() {
            errs.add("sni.value", "must be set");
        } else {
            for problem in dns1123_subdomain_problems(&sni.value) {
                errs.add("sni.value", problem);
            }
        }
    }
    errs
}

/// Checks the `matches` of one `rules` entry the way Kuma's newer inbound policies do
/// (MeshTimeout, MeshRateLimit): each match on its own, at least one of `spiffeID` or `sni`,
/// and a SPIFFE ID match type of `Exact` or `Prefix`. Paths are relative to the rule
/// (`matches[0].spiffeID.type`). Also says whether any match names a SPIFFE ID: the fields
/// that cannot depend on the caller's identity are refused then.
pub(crate) fn validate_rule_matches(matches: &[Match]) -> (ValidationError, bool) {
    let mut errs = ValidationError::new();
    let mut has_spiffe_id = false;
    for (i, m) in matches.iter().enumerate() {
        let path = format!("matches[{i}]");
        errs.add_prefixed(&path, validate_match(m));
        match (&m.spiffe_id, &m.sni) {
            (None, None) => errs.add(&path, "must specify at least one of 'spiffeID' or 'sni'"),
            (Some(id), _) => {
                has_spiffe_id = true;
                match id.kind.as_str() {
                    "Exact" | "Prefix" => {}
                    "" => errs.add(format!("{path}.spiffeID.type"), "must be set"),
                    other => errs.add(
                        format!("{path}.spiffeID.type"),
                        format!("unrecognized type {other:?}, supported values are: Exact, Prefix"),
                    ),
                }
            }
            (None, Some(_)) => {}
        }
    }
    (errs, has_spiffe_id)
}

/// go-spiffe's rules: `spiffe://<trust domain>[/<segment>...]`, a lower-case trust domain of
/// letters, digits, `.`, `-`, `_`; path segments of letters, digits, `.`, `-`, `_`, neither
/// empty nor `.`/`..`.
pub(crate) fn parse_spiffe_id(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("cannot be empty");
    }
    let rest = s
        .strip_prefix("spiffe://")
        .ok_or("scheme is missing or invalid")?;
    let (td, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if td.is_empty() {
        return Err("trust domain is missing");
    }
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    {
        return Err(
            "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
        );
    }
    if path.is_empty() {
        return Ok(());
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err("path cannot contain empty segments");
        }
        if segment == "." || segment == ".." {
            return Err("path cannot contain dot segments");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores",
            );
        }
    }
    Ok(())
}

/// Kubernetes' `IsDNS1123Subdomain` messages.
pub(crate) fn dns1123_subdomain_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    if !s.split('.').all(label_ok) {
        out.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_follow_go_spiffe() {
        assert_eq!(parse_spiffe_id("spiffe://default/client"), Ok(()));
        assert_eq!(parse_spiffe_id("spiffe://default"), Ok(()));
        assert_eq!(parse_spiffe_id(""), Err("cannot be empty"));
        assert_eq!(
            parse_spiffe_id("http://default/x"),
            Err("scheme is missing or invalid")
        );
        assert_eq!(
            parse_spiffe_id("spiffe:///x"),
            Err("trust domain is missing")
        );
        assert!(parse_spiffe_id("spiffe://Default/x").is_err());
        assert_eq!(
            parse_spiffe_id("spiffe://default//x"),
            Err("path cannot contain empty segments")
        );
        assert_eq!(
            parse_spiffe_id("spiffe://default/../x"),
            Err("path cannot contain dot segments")
        );
        assert!(parse_spiffe_id("spiffe://default/a b").is_err());
    }

    #[test]
    fn sni_must_be_a_dns_subdomain() {
        assert!(dns1123_subdomain_problems("backend.mesh").is_empty());
        assert_eq!(dns1123_subdomain_problems("Back_end").len(), 1);
        assert_eq!(dns1123_subdomain_problems(&"a".repeat(254)).len(), 1);
    }
}
