#!/usr/bin/env bash
# Stops what demo/up.sh started (gracefully: SIGTERM, then waits).
set -euo pipefail
state="$(cd "$(dirname "$0")/.." && pwd)/.aerie"
for pidfile in "$state"/*.pid; do
  [ -e "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
  fi
  rm -f "$pidfile"
done
