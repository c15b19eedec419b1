//! Validation violations: Kuma's `{field, message}` pairs, collected rather than returned early,
//! so one run reports every problem in a document.

use std::fmt;

/// One problem with one field, e.g. `spec.from[0].default.action: must be defined`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Kuma-style path: `a.b[0].c`, `tags["k"]`; empty when the problem is the whole document.
    pub field: String,
    pub message: String,
}

/// Every violation found in one resource, in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub violations: Vec<Violation>,
}

impl ValidationError {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Appends another set of violations, each with `prefix` in front of its field.
    pub fn add_prefixed(&mut self, prefix: &str, other: ValidationError) {
        for v in other.violations {
            let field = match (prefix.is_empty(), v.field.is_empty()) {
                (true, _) => v.field,
                (false, true) => prefix.to_string(),
                (false, false) if v.field.starts_with('[') => format!("{prefix}{}", v.field),
                (false, false) => format!("{prefix}.{}", v.field),
            };
            self.violations.push(Violation {
                field,
                message: v.message,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// `Ok(())` when nothing was found, so validators can end with `errs.into_result()`.
    pub fn into_result(self) -> Result<(), ValidationError> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if v.field.is_empty() {
                f.write_str(&v.message)?;
            } else {
                write!(f, "{}: {}", v.field, v.message)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_joins_violations_like_kuma() {
        let mut e = ValidationError::new();
        e.add("name", "cannot be empty");
        e.add("mesh", "cannot be empty");
        assert_eq!(
            e.to_string(),
            "name: cannot be empty; mesh: cannot be empty"
        );
    }

    #[test]
    fn prefixing_handles_indexes_and_empty_fields() {
        let mut inner = ValidationError::new();
        inner.add("[0].port", "bad");
        inner.add("", "whole");
        inner.add("kind", "must be defined");
        let mut outer = ValidationError::new();
        outer.add_prefixed("networking.inbound", inner);
        let fields: Vec<_> = outer.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "networking.inbound[0].port",
                "networking.inbound",
                "networking.inbound.kind"
            ]
        );
        assert!(ValidationError::new().into_result().is_ok());
    }
}
