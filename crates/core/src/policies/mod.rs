//! Machinery shared by every targetRef policy kind (Kuma's `pkg/plugins/policies/core`).

pub mod rules;
