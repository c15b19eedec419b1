#!/usr/bin/env bash
# Brings up a working local Aerie mesh on this machine:
#   - kuma-cp on Kuma's default ports (work dir ./.aerie/cp),
#   - three Kong Air demo services (check-in-api, flight-control, booking) as small HTTP apps,
#   - a kuma-dp sidecar for each, each on its own loopback address,
# then prints what to run next: the walkthrough in docs/walkthrough.md works
# verbatim against it. Stop everything with demo/down.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${AERIE_PROFILE:-debug}"
state="$root/.aerie"

echo "== building (profile: $profile)"
if [ "$profile" = release ]; then cargo build --release --bins; else cargo build --bins; fi
bin="$root/target/$profile"

if [ -f "$state/kuma-cp.pid" ] && kill -0 "$(cat "$state/kuma-cp.pid")" 2>/dev/null; then
  echo "a local mesh is already running; stop it first with demo/down.sh"
  exit 1
fi
rm -rf "$state"
mkdir -p "$state/logs" "$state/dp"

start() { # name, log, command...
  local name="$1"; shift
  nohup "$@" >"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
}

wait_http() { # url, what
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $2 ($1); logs in $state/logs"; exit 1
}

echo "== kuma-cp"
KUMA_GENERAL_WORK_DIR="$state/cp" start kuma-cp "$bin/kuma-cp" run
wait_http http://127.0.0.1:5680/ready "kuma-cp"
kumactl=("$bin/kumactl" --config-file "$state/kumactl.config")
"${kumactl[@]}" config control-planes add --name local --address http://127.0.0.1:5681 --overwrite >/dev/null

echo "== demo services and their sidecars"
# name           app port  sidecar address  admin  outbound to check-in-api
services=(
  "check-in-api   18080     127.0.0.11       9911   -"
  "flight-control 18081     127.0.0.12       9912   10001"
  "booking        18082     127.0.0.13       9913   10002"
)
for row in "${services[@]}"; do
  read -r svc app_port ip admin outbound <<<"$row"
  start "$svc-app" "$bin/demo-app" --name "$svc" --listen "127.0.0.1:$app_port"
  dp="$state/dp/$svc.yaml"
  cat >"$dp" <<YAML
type: Dataplane
mesh: default
name: $svc-1
networking:
  address: $ip
  admin:
    port: $admin
  inbound:
  - port: 9000
    servicePort: $app_port
    tags:
      kuma.io/service: $svc-blu
      kuma.io/protocol: http
YAML
  if [ "$outbound" != "-" ]; then
    cat >>"$dp" <<YAML
  outbound:
  - port: $outbound
    tags:
      kuma.io/service: check-in-api-blu
YAML
  fi
  "${kumactl[@]}" generate dataplane-token --name "$svc-1" --mesh default >"$state/dp/$svc.token"
  start "$svc-dp" "$bin/kuma-dp" run --cp-address https://127.0.0.1:5678 \
    --ca-cert-file "$state/cp/tls/dp-server.crt" \
    --dataplane-file "$dp" --dataplane-token-file "$state/dp/$svc.token"
done
for admin in 9911 9912 9913; do wait_http "http://127.0.0.1:$admin/ready" "sidecar admin :$admin"; done

echo
"${kumactl[@]}" inspect dataplanes
cat <<MSG

The local mesh is up (logs in $state/logs):
  kuma-cp        REST API http://localhost:5681, DP server https://localhost:5678
  check-in-api   sidecar 127.0.0.11:9000 -> app 127.0.0.1:18080
  flight-control calls check-in-api through its sidecar at 127.0.0.1:10001
  booking        calls check-in-api through its sidecar at 127.0.0.1:10002

Try it (mTLS is off, so both callers get 200):
  export PATH="$bin:\$PATH"
  curl -i http://127.0.0.1:10001/    # as flight-control
  curl -i http://127.0.0.1:10002/    # as booking

Then follow docs/walkthrough.md (Kong Mesh's "Your First Policy"); kumactl talks to
http://localhost:5681 by default. After the targeted MeshTrafficPermission only
flight-control gets 200; booking gets 403 "RBAC: access denied" from check-in-api's sidecar.
  kumactl inspect dataplane check-in-api-1 --type=policies

Stop everything: demo/down.sh
MSG
