//! `kuma-cp`: see the `aerie-cp` library.

#![forbid(unsafe_code)]

fn main() {
    std::process::exit(aerie_cp::cli::main());
}
