#!/usr/bin/env bash
# Control-plane benchmark: N synthetic proxies (the real CP<->DP protocol client, no
# traffic) connected to a real kuma-cp; how long a MeshTrafficPermission applied through the
# API takes to reach every proxy, and the CP's memory. See bench/README.md.
#
# Usage: bench/controlplane.sh [N]     N defaults to 10000; 1000 is a quick check (~1 min).
# Env:   SETUP_TIMEOUT=900 PROPAGATION_TIMEOUT=120 (seconds; both bound the run)
#        CP_ENV="NAME=value ..." extra environment for kuma-cp, CP_WRAP="heaptrack -o F" a
#        command kuma-cp runs under (experiments; RSS figures then include the wrapper)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-10000}
SETUP_TIMEOUT=${SETUP_TIMEOUT:-900}
PROPAGATION_TIMEOUT=${PROPAGATION_TIMEOUT:-120}
RESULTS=$ROOT/bench/results
DATE=$(date +%Y-%m-%d)
# BARE=1: the mesh without Kuma's default policies (MeshTimeout, MeshRetry, MeshCircuitBreaker),
# to measure what they cost.
BARE=${BARE:-0}
CP_ENV=${CP_ENV:-}
CP_WRAP=${CP_WRAP:-}
SUFFIX="" SKIP_MESH=false BENCH_ARGS=()
if [[ $BARE == 1 ]]; then
    SUFFIX=-bare SKIP_MESH=true BENCH_ARGS=(--skip-default-policies)
fi
OUT=$RESULTS/controlplane-$DATE-n$N$SUFFIX.md

TMP=$(mktemp -d /tmp/aerie-bench-cp.XXXXXX)
PIDS=()
OK=0

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $OK == 1 ]]; then
        rm -rf "$TMP"
    else
        echo "benchmark failed; logs kept in $TMP" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building release binaries"
(cd "$ROOT" && cargo build --release --bins -q)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in kuma-cp aerie-cp-bench; do [[ -x $BIN/$b ]] || { echo "missing $BIN/$b" >&2; exit 1; }; done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url [timeout s]
    local url=$1 t=${2:-30}
    for _ in $(seq $((t * 10))); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $url" >&2
    return 1
}

# Both processes need about N file descriptors (one connection per proxy): raise the soft
# limit to the hard one for everything started from here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((NOFILE < N + 512)); then
    log "WARNING: RLIMIT_NOFILE is $NOFILE; $N proxies need about $((N + 512)) per process"
fi

CPW=$TMP/kuma
mkdir -p "$CPW"
CP_HTTP=$(free_port)
CP_HTTPS=$(free_port)
CP_DIAG=$(free_port)
CP_DP=$(free_port)
CP_MADS=$(free_port)
env -i PATH="$PATH" HOME="$CPW" KUMA_GENERAL_WORK_DIR="$CPW/work" \
    KUMA_API_SERVER_HTTP_INTERFACE=127.0.0.1 KUMA_API_SERVER_HTTP_PORT="$CP_HTTP" \
    KUMA_API_SERVER_HTTPS_INTERFACE=127.0.0.1 KUMA_API_SERVER_HTTPS_PORT="$CP_HTTPS" \
    KUMA_DIAGNOSTICS_SERVER_PORT="$CP_DIAG" KUMA_DP_SERVER_PORT="$CP_DP" \
    KUMA_MONITORING_ASSIGNMENT_SERVER_PORT="$CP_MADS" \
    KUMA_DEFAULTS_SKIP_MESH_CREATION=$SKIP_MESH $CP_ENV \
    $CP_WRAP "$BIN/kuma-cp" run >"$CPW/kuma-cp.log" 2>&1 &
CP=$!
PIDS+=($CP)
wait_http "http://127.0.0.1:$CP_DIAG/ready"
wait_http "http://127.0.0.1:$CP_HTTP/"
log "kuma-cp pid $CP (RLIMIT_NOFILE $NOFILE); connecting $N synthetic proxies"

set +e
timeout --kill-after=10 $((SETUP_TIMEOUT + PROPAGATION_TIMEOUT + 240)) \
    "$BIN/aerie-cp-bench" --api "http://127.0.0.1:$CP_HTTP" --dp-address "https://127.0.0.1:$CP_DP" \
    --ca-cert-file "$CPW/work/tls/dp-server.crt" -n "$N" --cp-pid "$CP" \
    --setup-timeout "$SETUP_TIMEOUT" --propagation-timeout "$PROPAGATION_TIMEOUT" \
    "${BENCH_ARGS[@]}" \
    >"$TMP/table.md" 2> >(tee "$TMP/tool.log" >&2)
RC=$?
set -e
CP_ALIVE=yes
kill -0 "$CP" 2>/dev/null || CP_ALIVE="NO (exited)"
CP_ERRORS=$(grep -ciE ' (error|warn) ' "$CPW/kuma-cp.log" || true)

mkdir -p "$RESULTS"
{
    echo "# Control-plane benchmark, N = $N, $(date '+%Y-%m-%d %H:%M')"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r)." \
        "kuma-cp (release, embedded store, fresh work dir); \`aerie-cp-bench\` runs N clients of" \
        "\`aerie_xds::client::run\` in one process on the same machine: they share the 2 cores with the CP, so the times include the clients decoding and acknowledging N configs." \
        "Each proxy: its own dataplane token and Dataplane \`bench-<i>\` (inbound \`svc-<i % 100>\` on an" \
        "unbound 127.x address, one outbound to the next service); mTLS builtin on the mesh$([[ $BARE == 1 ]] && echo ", created without Kuma's default policies" || true)." \
        "T0 = just before \`PUT\` of a MeshTrafficPermission (Mesh -> Mesh, Allow); a proxy counts when its sink" \
        "applied a config whose inbound authorization differs from the one it had at T0." \
        "RLIMIT_NOFILE: $NOFILE."
    echo
    if [[ -s $TMP/table.md ]]; then cat "$TMP/table.md"; else echo "**No result table: the tool exited with status $RC.**"; fi
    echo
    echo "Tool exit status: $RC$( ((RC == 124 || RC == 137)) && echo ' (killed by the overall timeout)'). kuma-cp alive at the end: $CP_ALIVE; warning/error lines in its log: $CP_ERRORS."
    if [[ $RC != 0 ]]; then
        echo
        echo "Last lines of the tool's log:"
        echo '```'
        tail -n 15 "$TMP/tool.log"
        echo '```'
    fi
    if [[ $CP_ERRORS != 0 ]]; then
        echo
        echo "kuma-cp warnings/errors, by kind (count, level, source, message start):"
        echo '```'
        grep -iE ' (error|warn) ' "$CPW/kuma-cp.log" \
            | sed -E 's/^[^ ]+ +//; s/ [a-z_.]+=.*$//; s/(.{0,140}).*/\1/' \
            | sort | uniq -c | sort -rn | sed -n '1,8p' || true
        echo '```'
    fi
} >"$TMP/report.md"
cp "$TMP/report.md" "$OUT"
cat "$OUT"
log "saved $OUT"
OK=1
