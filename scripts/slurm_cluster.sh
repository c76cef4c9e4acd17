#!/usr/bin/env bash
# A real 2-node SLURM cluster on this host, for the SLURM backend's tests.
#
#   sudo scripts/slurm_cluster.sh start    # install (first time), configure, start, wait idle
#   scripts/slurm_cluster.sh status        # daemons and nodes; exit 0 when the cluster is up
#   sudo scripts/slurm_cluster.sh stop     # stop the daemons this script started
#
# Both "nodes" (n1, n2) are slurmd processes on this host (slurmd -N n1 / -N n2), so
# multi-node code paths (node rank, rendezvous on the first node) run for real. Partitions:
# `low` (default, preemptable: jobs get their --signal, then are requeued) and `high` (preempts
# `low`). State, logs and PID files live in $LAUNCHER_SLURM_DIR (default /tmp/launcher-slurm);
# the config goes to /etc/slurm/slurm.conf, where Debian's SLURM tools look for it.
# Needs root and Debian/Ubuntu (apt) the first time; starting an installed cluster takes seconds.
set -euo pipefail

STATE_DIR="${LAUNCHER_SLURM_DIR:-/tmp/launcher-slurm}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# written by launcher scripts/slurm_cluster.sh"
START_TIMEOUT="${LAUNCHER_SLURM_START_TIMEOUT:-60}"

die() { echo "slurm_cluster: $*" >&2; exit 1; }
log() { echo "slurm_cluster: $*" >&2; }

alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [[ $EUID -eq 0 ]] || die "SLURM is not installed and installing it needs root"
    command -v apt-get >/dev/null || die "SLURM is not installed and apt-get is not available"
    # One apt at a time (parallel test workers, scripts/debian_tool.sh): dpkg's lock is no queue.
    exec 9>/tmp/launcher-apt.lock && flock 9
    log "installing slurm-wlm and munge (about 10 s)"
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists when the plain install fails: saves ~10 s on warm images.
    if ! apt-get install -y -q slurm-wlm munge >"$STATE_DIR/apt.log" 2>&1; then
        apt-get update -q >>"$STATE_DIR/apt.log" 2>&1
        apt-get install -y -q slurm-wlm munge >>"$STATE_DIR/apt.log" 2>&1 \
            || { tail -20 "$STATE_DIR/apt.log" >&2; die "apt-get install slurm-wlm munge failed"; }
    fi
}

write_config() {
    local host mem_kb mem_mb out="$1"
    host="$(hostname)"
    # 10000 MB per node unless the machine is smaller (slurmd drains a node that has less).
    mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    mem_mb=$(( mem_kb / 1024 * 9 / 10 ))
    (( mem_mb > 10000 )) && mem_mb=10000
    cat >"$out" <<EOF
$MARKER; state in $STATE_DIR
ClusterName=launcher
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Requeued jobs wait cred_expire seconds before they may start again (default 120).
AuthInfo=cred_expire=5
StateSaveLocation=$STATE_DIR/ctld
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdSpoolDir=$STATE_DIR/spool/%n
SlurmdPidFile=$STATE_DIR/slurmd-%n.pid
SlurmdLogFile=$STATE_DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
# Fast turnaround for tests: short kill wait, completed jobs purged after 30 s, a scheduler
# pass every 2 s besides the event-driven ones.
KillWait=5
MinJobAge=30
JobRequeue=1
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2,batch_sched_delay=1
# Preemption: a job in 'high' requeues jobs in 'low'; they get their --signal first.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=n[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=17001-17002 CPUs=2 RealMemory=$mem_mb State=UNKNOWN
PartitionName=low Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=20
PartitionName=high Nodes=n[1-2] MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
}

ensure_hosts() {
    # n1/n2 must resolve: the first node of SLURM_JOB_NODELIST is the rendezvous address.
    if ! grep -qE '^[^#]*[[:space:]]n1([[:space:]]|$)' /etc/hosts \
        || ! grep -qE '^[^#]*[[:space:]]n2([[:space:]]|$)' /etc/hosts; then
        echo "127.0.0.1 n1 n2  $MARKER" >>/etc/hosts
    fi
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    munge_works && return
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    rm -f "$STATE_DIR/munged.pid"
    su -s /bin/sh munge -c /usr/sbin/munged
    local i
    for i in $(seq 50); do munge_works && break; sleep 0.1; done
    munge_works || die "munged did not start; see /var/log/munge/munged.log"
    # Record munged's PID under our state dir so `stop` ends only what `start` started.
    cp /run/munge/munged.pid "$STATE_DIR/munged.pid"
}

# nodes_in STATES_REGEX: both nodes answer and are in one of these states.
nodes_in() {
    local states
    states="$(sinfo -h -N -p low -o '%N %t' 2>/dev/null | sort -u)" || return 1
    grep -qE "^n1 ($1)\$" <<<"$states" && grep -qE "^n2 ($1)\$" <<<"$states"
}
nodes_idle() { nodes_in idle; }
nodes_up() { nodes_in 'idle|mix|alloc|comp'; }  # up, possibly running someone's jobs

daemons_up() {
    alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd-n1.pid" \
        && alive "$STATE_DIR/slurmd-n2.pid"
}

wait_ready() {
    local deadline=$(( SECONDS + START_TIMEOUT )) resumed=0 states
    until nodes_idle; do
        states="$(sinfo -h -N -p low -o '%N %t' 2>/dev/null | sort -u | tr '\n' ' ')" || true
        # Nodes left down/drained by an earlier session (a killed job, a restart): resume them.
        if (( !resumed )) && grep -qE 'down|drain|drng|fail' <<<"$states"; then
            scontrol update NodeName=n[1-2] State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        if (( SECONDS >= deadline )); then
            echo "slurm_cluster: nodes not idle after ${START_TIMEOUT}s (sinfo: ${states:-no answer})" >&2
            local f
            for f in slurmctld.log slurmd-n1.log slurmd-n2.log; do
                echo "---- tail $STATE_DIR/log/$f" >&2
                tail -15 "$STATE_DIR/log/$f" >&2 2>/dev/null || true
            done
            exit 1
        fi
        sleep 0.5
    done
}

cmd_start() {
    [[ $EUID -eq 0 ]] || die "starting the test cluster needs root (slurmd runs jobs as any user)"
    mkdir -p "$STATE_DIR"/{ctld,log,spool/n1,spool/n2}
    chmod 0755 "$STATE_DIR" "$STATE_DIR/spool" "$STATE_DIR"/spool/n{1,2}
    install_packages
    write_config "$STATE_DIR/slurm.conf.new"
    mkdir -p "$CONF_DIR"
    if [[ -f "$CONF" ]] && ! grep -qF "$MARKER" "$CONF" && [[ ! -f "$STATE_DIR/slurm.conf.orig" ]]; then
        cp "$CONF" "$STATE_DIR/slurm.conf.orig"  # someone else's config: keep a copy
    fi
    local changed=1
    cmp -s "$STATE_DIR/slurm.conf.new" "$CONF" && changed=0
    if (( !changed )) && daemons_up && nodes_up; then
        rm -f "$STATE_DIR/slurm.conf.new"
        log "already running"
        return
    fi
    if (( changed )); then
        stop_slurm_daemons
        mv "$STATE_DIR/slurm.conf.new" "$CONF"
    else
        rm -f "$STATE_DIR/slurm.conf.new"
    fi
    ensure_hosts
    start_munge
    alive "$STATE_DIR/slurmctld.pid" || /usr/sbin/slurmctld
    local n
    for n in n1 n2; do
        alive "$STATE_DIR/slurmd-$n.pid" || /usr/sbin/slurmd -N "$n"
    done
    wait_ready
    log "up: nodes n1 n2 idle; partitions low (default), high"
}

# stop_pidfiles FILE...: TERM every live PID at once (each daemon takes ~2 s to exit), wait up
# to 10 s, then KILL what is left.
stop_pidfiles() {
    local pidfile pids=() pid i
    for pidfile in "$@"; do
        alive "$pidfile" && pids+=("$(cat "$pidfile")")
    done
    if (( ${#pids[@]} )); then
        kill "${pids[@]}" 2>/dev/null || true
        for i in $(seq 100); do
            local left=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
            (( left )) || break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; done
    fi
    rm -f "$@"
}

stop_slurm_daemons() {
    stop_pidfiles "$STATE_DIR"/slurmd-n{1,2}.pid "$STATE_DIR/slurmctld.pid"
}

cmd_stop() {
    # Cancel what still runs so no job steps outlive their slurmd.
    if alive "$STATE_DIR/slurmctld.pid" && [[ -n "$(squeue -h -o %i 2>/dev/null)" ]]; then
        scancel --quiet --full --partition=low,high 2>/dev/null || true
        sleep 1
    fi
    stop_slurm_daemons
    stop_pidfiles "$STATE_DIR/munged.pid"
    log "stopped"
}

cmd_status() {
    local name pidfile
    for name in slurmctld slurmd-n1 slurmd-n2 munged; do
        pidfile="$STATE_DIR/$name.pid"
        if alive "$pidfile"; then echo "$name: running (pid $(cat "$pidfile"))"
        else echo "$name: not running (by this script)"; fi
    done
    if command -v sinfo >/dev/null && sinfo -N -o '%N %P %t' 2>/dev/null; then
        nodes_up
    else
        return 1
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status   (state dir: $STATE_DIR)" >&2; exit 2 ;;
esac
