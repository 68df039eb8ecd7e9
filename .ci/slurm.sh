#!/usr/bin/env bash
# CI: a single-node Slurm on localhost (Debian's slurm-wlm and munge; slurmctld and slurmd as
# root, linuxproc process tracking, no task plugin: what works in an unprivileged-cgroup
# sandbox), then the Slurm tests (tests/slurm.rs), which submit job arrays through
# `texstyle batch --slurm`. Safe to run again: a Slurm already up is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge
fi

node=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge /etc/munge
cat > "$conf" <<CONF
ClusterName=texstyle-ci
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
MinJobAge=600
NodeName=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
# No cgroup.conf: slurmd picks the cgroup plugin that loads here (v1 in these sandboxes).
rm -f /etc/slurm/cgroup.conf

if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    chmod 711 /run/munge
    runuser -u munge -- munged || munged --force
fi
if ! scontrol ping 2>/dev/null | grep -q UP; then
    slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
    slurmd
fi

# Wait (bounded) for the node to take jobs.
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mix|alloc) break ;;
        down*|drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
state=$(sinfo -h -N -o '%t' | head -1)
case "$state" in
    idle|mix|alloc) echo "slurm: node $node is $state" ;;
    *) echo "slurm: node $node did not come up (state: $state); see /var/log/slurm/" >&2; exit 1 ;;
esac

if [ "${1:-}" != "--start-only" ]; then
    cargo test --features slurm-tests --test slurm
fi
