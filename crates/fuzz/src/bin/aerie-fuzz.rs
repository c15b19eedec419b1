//! `aerie-fuzz [--inputs N] [--seed S] [--crash-dir DIR] [TARGET...]`: runs each target
//! (all by default) for N generated inputs and prints inputs/s and panics per target; exits
//! 1 if anything panicked. `aerie-fuzz --replay TARGET FILE...` runs saved inputs again.

use std::path::PathBuf;
use std::process::ExitCode;

use aerie_fuzz::targets::{NAMES, by_name};

fn usage() -> ExitCode {
    eprintln!(
        "usage: aerie-fuzz [--inputs N] [--seed S] [--crash-dir DIR] [TARGET...]\n       aerie-fuzz --replay TARGET FILE...\ntargets: {}",
        NAMES.join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut inputs: u64 = 1_000_000;
    let mut seed: u64 = 1;
    let mut crash_dir = PathBuf::from("fuzz-crashes");
    let mut targets: Vec<String> = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--inputs" => match args.next().and_then(|v| v.replace('_', "").parse().ok()) {
                Some(n) => inputs = n,
                None => return usage(),
            },
            "--seed" => match args.next().and_then(|v| v.parse().ok()) {
                Some(s) => seed = s,
                None => return usage(),
            },
            "--crash-dir" => match args.next() {
                Some(d) => crash_dir = PathBuf::from(d),
                None => return usage(),
            },
            "--replay" => return replay(args.collect()),
            "-h" | "--help" => return usage(),
            name if NAMES.contains(&name) => targets.push(name.to_string()),
            other => {
                eprintln!("unknown argument {other:?}");
                return usage();
            }
        }
    }
    if targets.is_empty() {
        targets = NAMES.iter().map(|s| s.to_string()).collect();
    }
    println!("| target | inputs | seconds | inputs/s | panics |");
    println!("|---|---:|---:|---:|---:|");
    let mut total_panics = 0;
    for name in &targets {
        let Some(mut target) = by_name(name) else {
            return usage();
        };
        let report = aerie_fuzz::run(target.as_mut(), inputs, seed, Some(&crash_dir));
        println!(
            "| {} | {} | {:.1} | {:.0} | {} |",
            report.target,
            report.inputs,
            report.elapsed.as_secs_f64(),
            report.per_second(),
            report.panics
        );
        if let Some(first) = &report.first_panic {
            eprintln!("{name}: first panic: {first}");
        }
        for path in &report.crashes {
            eprintln!("{name}: saved {}", path.display());
        }
        total_panics += report.panics;
    }
    if total_panics > 0 {
        eprintln!(
            "{total_panics} panic(s); inputs saved under {}",
            crash_dir.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn replay(args: Vec<String>) -> ExitCode {
    let Some((name, files)) = args.split_first() else {
        return usage();
    };
    let Some(mut target) = by_name(name) else {
        return usage();
    };
    let mut failed = false;
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{file}: {e}");
                failed = true;
                continue;
            }
        };
        match aerie_fuzz::replay(target.as_mut(), &text) {
            Ok(()) => println!("{file}: ok"),
            Err(msg) => {
                println!("{file}: panic: {msg}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
