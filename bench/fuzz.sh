#!/usr/bin/env bash
# Fuzzes what Aerie parses from untrusted peers (see crates/fuzz): builds the harness in
# release, runs every target for INPUTS generated inputs (default 1,000,000 each), prints
# inputs/s and panics per target, and exits non-zero on any panic. Inputs that panicked are
# saved (hex) under CRASH_DIR; replay one with
#   target/release/aerie-fuzz --replay <target> <file>.hex
#
#   bench/fuzz.sh                         # every target, 1,000,000 inputs each
#   INPUTS=100000 SEED=7 bench/fuzz.sh http token
set -euo pipefail
cd "$(dirname "$0")/.."

INPUTS="${INPUTS:-1000000}"
SEED="${SEED:-1}"
CRASH_DIR="${CRASH_DIR:-target/fuzz-crashes}"

cargo build --release -p aerie-fuzz --bin aerie-fuzz
echo "== aerie-fuzz: ${INPUTS} inputs per target, seed ${SEED}, crashes to ${CRASH_DIR}"
exec target/release/aerie-fuzz --inputs "$INPUTS" --seed "$SEED" --crash-dir "$CRASH_DIR" "$@"
