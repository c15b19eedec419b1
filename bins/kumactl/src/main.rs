//! `kumactl`: the command-line tool for Aerie, compatible with Kuma 2.14's kumactl.

#![forbid(unsafe_code)]

fn main() {
    std::process::exit(aerie_ctl::main())
}
