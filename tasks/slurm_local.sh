#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (munged, slurmctld, slurmd as root), for trying the
# slurm executor and for CI. `tasks/slurm_local.sh` starts it (a second call finds it running),
# `tasks/slurm_local.sh stop` stops it. Needs root and Debian's Slurm (slurm-wlm's parts:
# slurmctld, slurmd, slurm-client) and munge, installed here when missing. State, spool and
# logs live under $LAB_SLURM_DIR (default /tmp/lab-slurm).
set -euo pipefail

DIR=${LAB_SLURM_DIR:-/tmp/lab-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# one-node cluster written by tasks/slurm_local.sh"
WAIT_S=${LAB_SLURM_WAIT_S:-60}
HOST=$(hostname -s)

die() {
  echo "slurm_local: $*" >&2
  exit 1
}

stop_daemons() {
  for d in slurmd slurmctld; do
    if [ -f "$DIR/$d.pid" ]; then
      kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
      rm -f "$DIR/$d.pid"
    fi
  done
}

if [ "${1:-start}" = "stop" ]; then
  stop_daemons
  echo "slurm_local: stopped slurmctld and slurmd (munged left running)"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (the daemons of a one-node cluster run as root)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
  ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "install Slurm (slurmctld, slurmd, client commands) and munge"
  apt-get update -qq
  # slurm-wlm without its recommends (the -dev plugins): a third of the packages.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi

# Already up: the controller answers and the node is usable.
if [ -f "$CONF" ] && scontrol ping 2>/dev/null | grep -q UP &&
  sinfo -h -n "$HOST" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
  echo "slurm_local: already running (node $HOST: $(sinfo -h -n "$HOST" -o %t))"
  exit 0
fi

if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  die "$CONF exists and was not written by this script: this machine has its own Slurm setup; use it"
fi

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/slurm
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
cat >"$CONF" <<EOF
$MARK
ClusterName=lab
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=300
SchedulerParameters=sched_interval=1
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# munged: the key apt made, its run folder owned by munge, started as the munge user.
[ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing: reinstall munge (apt-get install --reinstall munge)"
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
fi

stop_daemons
slurmctld || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
slurmd || die "slurmd did not start (see $DIR/log/slurmd.log)"

for _ in $(seq 1 "$((WAIT_S * 2))"); do
  state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
  if [ "$state" = idle ]; then
    echo "slurm_local: node $HOST idle ($CPUS CPUs, ${MEM_MB} MB); partition debug; logs in $DIR/log"
    exit 0
  fi
  sleep 0.5
done
die "node $HOST not idle after ${WAIT_S}s (sinfo says '${state:-nothing}'); see $DIR/log/slurmctld.log and slurmd.log"
