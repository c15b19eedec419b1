#!/usr/bin/env bash
# Brings up a local Aerie control plane on this machine (Kuma's default ports) with its
# work dir under ./.aerie, and prints what to run next. Stop it with demo/down.sh.
# The data plane (kuma-dp sidecars and the Kong Air demo services) joins this script when
# it lands (issue #3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${AERIE_PROFILE:-debug}"
state="$root/.aerie"
mkdir -p "$state/logs"

echo "== building (profile: $profile)"
if [ "$profile" = release ]; then cargo build --release --bins; else cargo build --bins; fi
bin="$root/target/$profile"

if [ -f "$state/kuma-cp.pid" ] && kill -0 "$(cat "$state/kuma-cp.pid")" 2>/dev/null; then
  echo "kuma-cp already running (pid $(cat "$state/kuma-cp.pid")); stop it with demo/down.sh"
  exit 1
fi

echo "== starting kuma-cp (work dir $state/cp, log $state/logs/kuma-cp.log)"
KUMA_GENERAL_WORK_DIR="$state/cp" nohup "$bin/kuma-cp" run >"$state/logs/kuma-cp.log" 2>&1 &
echo $! >"$state/kuma-cp.pid"

for _ in $(seq 1 200); do
  if "$bin/kumactl" --config-file "$state/kumactl-probe" get meshes >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$state/kuma-cp.pid")" 2>/dev/null; then
    echo "kuma-cp exited; its log:"; cat "$state/logs/kuma-cp.log"; exit 1
  fi
  sleep 0.1
done
rm -f "$state/kumactl-probe"
"$bin/kumactl" --config-file "$state/kumactl-probe" get meshes
rm -f "$state/kumactl-probe"

cat <<MSG

kuma-cp is up: REST API http://localhost:5681 (HTTPS :5682), diagnostics http://localhost:5680/ready

Next:
  export PATH="$bin:\$PATH"
  kumactl get meshes
  # then follow the walkthrough in ../shared/seed/first-policy.md (Universal tab), e.g.
  echo 'type: Mesh
name: default
mtls:
  backends:
    - name: builtin
      type: builtin
  enabledBackend: builtin' | kumactl apply -f -
  kumactl get meshes -o yaml | grep -A5 mtls

Stop: demo/down.sh
MSG
