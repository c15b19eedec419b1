//! Every target, a few thousand inputs, in the ordinary test run: the harnesses cannot rot,
//! and every input that once crashed (`regressions/<target>-*.hex`) is replayed.

use aerie_fuzz::targets::{NAMES, by_name};

/// Inputs per target (debug build): enough to reach every surface of each target.
const INPUTS: u64 = 5000;

#[test]
fn every_target_runs_without_panics() {
    for name in NAMES {
        let mut target = by_name(name).unwrap();
        let report = aerie_fuzz::run(target.as_mut(), INPUTS, 42, None);
        assert_eq!(report.inputs, INPUTS);
        assert_eq!(report.panics, 0, "{name}: {:?}", report.first_panic);
    }
}

#[test]
fn saved_crashes_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    files.sort();
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let name = stem.split('-').next().unwrap();
        let mut target = by_name(name).unwrap_or_else(|| panic!("{stem}: no target {name}"));
        let hex = std::fs::read_to_string(&file).unwrap();
        if let Err(msg) = aerie_fuzz::replay(target.as_mut(), &hex) {
            panic!("{}: {msg}", file.display());
        }
    }
}

/// The structure-aware targets start from valid documents; a seed that stopped being valid
/// would quietly make them shallower.
#[test]
fn resource_seeds_are_valid() {
    use aerie_core::format::{parse_yaml_value, resource_from_value};
    for text in aerie_fuzz::targets::seeds::RESOURCES {
        let r = resource_from_value(&parse_yaml_value(text).unwrap())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        aerie_core::validate::validate(&r).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}
