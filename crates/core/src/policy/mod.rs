//! Policy resolution.
