//! `kuma-cp`: see the `aerie-cp` library.
fn main() {
    std::process::exit(aerie_cp::cli::main());
}
