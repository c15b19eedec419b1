//! Policy resolution: from stored policies and a Dataplane to what that Dataplane's proxy
//! enforces. Pure functions of their inputs (no I/O, no clock), deterministic, one folder per
//! policy kind as in Kuma's `pkg/plugins/policies/<name>`.

pub mod mtp;
