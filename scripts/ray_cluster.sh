#!/usr/bin/env bash
# A local 2-node Ray cluster on 127.0.0.1 for tests and benchmarks.
#
#   scripts/ray_cluster.sh start     # head (GCS 127.0.0.1:6390, job API :8275) + 1 worker node
#   scripts/ray_cluster.sh status    # nodes and resources; exit 1 when not running
#   scripts/ray_cluster.sh stop      # stops only the processes this script started
#
# Environment overrides (defaults in brackets):
#   RAY_HEAD_PORT [6390]  RAY_DASHBOARD_PORT [8275]  RAY_CLIENT_PORT [10001]
#   RAY_AGENT_PORT [52400]: dashboard agent of node i listens on RAY_AGENT_PORT + i
#   RAY_CLUSTER_AUTH [token]: `token` (a fresh token in $RAY_CLUSTER_DIR/auth_token) | `disabled`
#   RAY_NUM_NODES [2]  RAY_CPUS_PER_NODE [1]  RAY_OBJECT_STORE_BYTES [200000000]
#   RAY_CLUSTER_DIR [/tmp/lray<head port>]: Ray's temp dir and our state files
#
# `start` and `status` print what clients need, as KEY=VALUE lines:
#   RAY_ADDRESS=127.0.0.1:6390  RAY_JOB_API=http://127.0.0.1:8275
#   RAY_AUTH_MODE=token  RAY_AUTH_TOKEN_PATH=/tmp/lray6390/auth_token
#
# Each node is started in its own session (setsid), and its session id is recorded; `stop`
# signals exactly the processes of those sessions, so other Ray clusters on the host survive
# (`ray stop` would kill every Ray process of the user).
# Ray advertises the host's routable IP for its nodes even when told 127.0.0.1 (it rewrites
# loopback in `ray start`); clients still connect through 127.0.0.1.
set -euo pipefail

HEAD_PORT="${RAY_HEAD_PORT:-6390}"
DASHBOARD_PORT="${RAY_DASHBOARD_PORT:-8275}"
CLIENT_PORT="${RAY_CLIENT_PORT:-10001}"
AGENT_PORT="${RAY_AGENT_PORT:-52400}"
AUTH="${RAY_CLUSTER_AUTH:-token}"
NUM_NODES="${RAY_NUM_NODES:-2}"
CPUS="${RAY_CPUS_PER_NODE:-1}"
OBJECT_STORE="${RAY_OBJECT_STORE_BYTES:-200000000}"
# Short on purpose: Ray puts unix sockets under it (108-byte path limit).
CLUSTER_DIR="${RAY_CLUSTER_DIR:-/tmp/lray${HEAD_PORT}}"
STATE="$CLUSTER_DIR/launcher_sessions"
ADDRESS="127.0.0.1:${HEAD_PORT}"
TOKEN_FILE="$CLUSTER_DIR/auth_token"
# Ray 2.60 turns token auth on by itself whenever ~/.ray/auth_token exists; be explicit.
if [[ "$AUTH" == "token" ]]; then
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_FILE"
    unset RAY_AUTH_TOKEN
else
    export RAY_AUTH_MODE=disabled
fi

log() { echo "ray_cluster: $*" >&2; }

port_in_use() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

alive_nodes() {
    # Prints the number of alive nodes, asking the job API (0 when it does not answer).
    timeout 20 python3 - "http://127.0.0.1:$DASHBOARD_PORT" <<'EOF' 2>/dev/null || echo 0
import sys
from ray.util.state import list_nodes
print(len(list_nodes(address=sys.argv[1], filters=[("state", "=", "ALIVE")], timeout=5)))
EOF
}

# node_start INDEX ARGS...: run `ray start --block ARGS` in a new session, record its sid.
node_start() {
    local index="$1"
    shift
    local out="$CLUSTER_DIR/node${index}.out"
    setsid ray start --block "$@" >"$out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >>"$STATE"
    for _ in $(seq 1 120); do
        if grep -q "Ray runtime started" "$out" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "node $index failed to start; its output:"
            cat "$out" >&2
            return 1
        fi
        sleep 0.5
    done
    log "node $index did not start within 60 s (see $out)"
    return 1
}

start() {
    if [[ -s "$STATE" ]] && [[ "$(alive_nodes)" -ge 1 ]]; then
        log "already running at $ADDRESS (stop it first)"
        return 0
    fi
    for port in "$HEAD_PORT" "$DASHBOARD_PORT" "$CLIENT_PORT" "$AGENT_PORT"; do
        if port_in_use "$port"; then
            log "port $port on 127.0.0.1 is taken; set RAY_HEAD_PORT, RAY_DASHBOARD_PORT, RAY_CLIENT_PORT or RAY_AGENT_PORT"
            return 1
        fi
    done
    mkdir -p "$CLUSTER_DIR"
    : >"$STATE"
    if [[ "$AUTH" == "token" ]]; then
        (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$TOKEN_FILE")
    fi
    # Disjoint worker port ranges and temp dirs, because all raylets live on the same host
    # (with one shared session dir, every node's log monitor streams every worker's log, so
    # each job log line would appear once per node).
    node_start 0 --head --node-ip-address=127.0.0.1 --port="$HEAD_PORT" \
        --num-cpus="$CPUS" --object-store-memory="$OBJECT_STORE" \
        --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
        --ray-client-server-port="$CLIENT_PORT" --temp-dir="$CLUSTER_DIR" \
        --dashboard-agent-listen-port="$AGENT_PORT" \
        --min-worker-port=20000 --max-worker-port=20999 --disable-usage-stats
    for i in $(seq 1 $((NUM_NODES - 1))); do
        node_start "$i" --address="$ADDRESS" --node-ip-address=127.0.0.1 \
            --num-cpus="$CPUS" --object-store-memory="$OBJECT_STORE" \
            --min-worker-port=$((20000 + 1000 * i)) --max-worker-port=$((20999 + 1000 * i)) \
            --dashboard-agent-listen-port=$((AGENT_PORT + i)) \
            --temp-dir="$CLUSTER_DIR/n$i" --disable-usage-stats
    done
    for _ in $(seq 1 60); do
        if [[ "$(alive_nodes)" -ge "$NUM_NODES" ]]; then
            client_env
            return 0
        fi
        sleep 1
    done
    log "cluster did not reach $NUM_NODES nodes"
    return 1
}

stop() {
    [[ -f "$STATE" ]] || { log "nothing to stop ($STATE missing)"; return 0; }
    local sids pids
    sids="$(tr '\n' ' ' <"$STATE")"
    # Every process in the recorded sessions (raylet, gcs, dashboard, Ray workers...).
    session_pids() {
        ps -eo pid=,sid=,stat= | awk -v s=" $sids " 'index(s, " " $2 " ") && $3 !~ /^Z/ { print $1 }'
    }
    pids="$(session_pids)"
    [[ -n "$pids" ]] && kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 20); do
        pids="$(session_pids)"
        [[ -z "$pids" ]] && break
        sleep 0.5
    done
    pids="$(session_pids)"
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
    rm -f "$STATE"
    log "stopped"
}

client_env() {
    echo "RAY_ADDRESS=$ADDRESS"
    echo "RAY_JOB_API=http://127.0.0.1:$DASHBOARD_PORT"
    echo "RAY_AUTH_MODE=$RAY_AUTH_MODE"
    [[ "$AUTH" == "token" ]] && echo "RAY_AUTH_TOKEN_PATH=$TOKEN_FILE"
    return 0
}

status() {
    local n
    n="$(alive_nodes)"
    client_env
    echo "ALIVE_NODES=$n"
    [[ "$n" -ge 1 ]]
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
