//! The DP-side stream client (see the crate docs).
