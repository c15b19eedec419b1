#!/usr/bin/env bash
# Stops what demo/up.sh started: sidecars first (they leave the mesh), then apps, then the
# control plane; each gracefully (SIGTERM, then waits).
set -euo pipefail
state="$(cd "$(dirname "$0")/.." && pwd)/.aerie"
stop() {
  local pidfile="$1" pid
  [ -e "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $(basename "$pidfile" .pid)"
  fi
  rm -f "$pidfile"
}
for f in "$state"/*-dp.pid; do stop "$f"; done
for f in "$state"/*-app.pid; do stop "$f"; done
stop "$state/kuma-cp.pid"
