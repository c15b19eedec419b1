//! Output formats of `kumactl get`: tables like kumactl's, YAML and JSON.

pub mod table;
pub mod yaml;

/// `-o`/`--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Yaml,
    Json,
}
