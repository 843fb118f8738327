#!/usr/bin/env bash
# Single-node SLURM cluster on this (Debian) machine, for CI: this host is both the controller and
# the only compute node.
#
#   bash tests/slurm/cluster.sh start    # install slurm-wlm + munge if missing, configure, start,
#                                        # wait until the node is idle, run a trivial sbatch job
#   bash tests/slurm/cluster.sh status   # exit 0 when the cluster answers and the node is usable
#   bash tests/slurm/cluster.sh stop     # stop slurmd, slurmctld and munged started by `start`
#
# Must run as root (it installs packages and writes /etc/slurm). The node advertises two fake GPUs
# (GRES `gpu`, AutoDetect=off) so that the scheduler accepts `--gpus=1` requests on a machine
# without GPUs. slurmd drops file-less GPUs and insists on device files, so each fake GPU is a
# character device with /dev/null's numbers under $STATE_DIR; jobs get CUDA_VISIBLE_DEVICES set by
# slurmd but no real device.
# There is no accounting database: use `--slurm-status-command squeue` (MinJobAge is raised so
# finished jobs stay visible to squeue long enough for Snakemake to see their final state).
set -euo pipefail

STATE_DIR=${TEMDENOISE_SLURM_STATE:-/var/lib/temdenoise-slurm}
CONF_DIR=/etc/slurm
MARKER="# written by temdenoise tests/slurm/cluster.sh"
FAKE_GPUS=2

log() { echo "[cluster.sh] $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
    local host cpus mem_mb
    host=$(hostname -s)
    # At least 4 CPUs even on a 2-core machine: test jobs mostly wait (imports, file system), and
    # more of them at once means fewer rounds of Snakemake's status polling.
    cpus=$(( $(nproc) > 4 ? $(nproc) : 4 ))
    # Leave 1 GiB to the system; SLURM enforces mem_mb requests against this.
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    if [[ -f $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
        log "refusing to overwrite $CONF_DIR/slurm.conf that was not written by this script"
        exit 1
    fi
    mkdir -p "$CONF_DIR" "$STATE_DIR"/{ctld,d,log}
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=temdenoise-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
# The declared node may differ from what slurmd detects (e.g. fake GPUs): trust the config.
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Keep finished jobs visible to squeue (Snakemake's status checks, the tests) for an hour.
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    local gpu
    for gpu in $(seq 0 $((FAKE_GPUS - 1))); do
        [[ -c $STATE_DIR/fakegpu$gpu ]] || mknod "$STATE_DIR/fakegpu$gpu" c 1 3
    done
    cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
AutoDetect=off
NodeName=$host Name=gpu File=$STATE_DIR/fakegpu[0-$((FAKE_GPUS - 1))]
EOF
    # Debian's slurm-wlm ships no cgroup.conf; with proctrack/linuxproc none is needed.
}

daemon_pid() { cat "$STATE_DIR/$1.pid" 2>/dev/null || true; }

running() {
    local pid
    pid=$(daemon_pid "$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

start_daemons() {
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge && chown munge:munge /run/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "starting munged"
        runuser -u munge -- munged
    fi
    if ! running slurmctld; then
        log "starting slurmctld"
        slurmctld -c   # -c: clean start, no jobs from a previous run
    fi
    if ! running slurmd; then
        log "starting slurmd"
        slurmd
    fi
}

wait_idle() {
    local host state
    host=$(hostname -s)
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
        case $state in
            idle|mix|alloc) return 0 ;;
            drain*|down*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    log "node $host did not become idle (state: ${state:-none}); see $STATE_DIR/log"
    tail -n 20 "$STATE_DIR"/log/*.log >&2 || true
    return 1
}

smoke_test() {
    local out job
    out=$(mktemp -d)
    job=$(sbatch --parsable --gpus=1 -t 1 --mem 100 -o "$out/%j.out" \
        --wrap 'echo "ran as job $SLURM_JOB_ID gpus=$CUDA_VISIBLE_DEVICES"')
    for _ in $(seq 60); do
        if [[ -s $out/$job.out ]] && ! squeue -h -j "$job" -t PD,R,CG 2>/dev/null | grep -q .; then
            log "smoke test: $(cat "$out/$job.out")"
            rm -rf "$out"
            return 0
        fi
        sleep 1
    done
    log "smoke test job $job did not finish"
    squeue >&2 || true
    return 1
}


stop_daemons() {
    local pid
    for daemon in slurmd slurmctld; do
        pid=$(daemon_pid "$daemon")
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            log "stopping $daemon ($pid)"
            kill "$pid"
            for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
    done
    pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        log "stopping munged ($pid)"
        kill "$pid"
    fi
}

case ${1:-} in
    start)
        [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
        install_packages
        write_config
        start_daemons
        wait_idle
        smoke_test
        log "SLURM is up: $(sinfo -h -o '%P %D %t %c cpus %m MB %G')"
        ;;
    status)
        command -v sinfo >/dev/null && sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
        ;;
    stop)
        stop_daemons
        ;;
    *)
        echo "usage: $0 start|status|stop" >&2
        exit 2
        ;;
esac
