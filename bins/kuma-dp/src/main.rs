//! `kuma-dp`: see the `aerie-dp` library.
fn main() {
    std::process::exit(aerie_dp::cli::main());
}
