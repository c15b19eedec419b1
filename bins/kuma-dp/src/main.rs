//! `kuma-dp`: see the `aerie-dp` library.

#![forbid(unsafe_code)]

fn main() {
    std::process::exit(aerie_dp::cli::main());
}
