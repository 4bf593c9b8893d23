#!/usr/bin/env bash
# The Slurm recipe of docs/slurm.md, run for real on a one-node cluster on localhost.
#
# Installs Debian's slurm-wlm and munge (as root), starts munged, slurmctld and slurmd with
# a minimal configuration, submits the job array printed in docs/slurm.md (section 2, taken
# from the document itself, so the test runs what the document says) for a small sweep,
# merges the shards with the document's merge command and checks that the merged
# results.csv equals an unsharded run's (the `seconds` column aside). Stops every daemon it
# started on exit.
#
# Usage: bash .ci/slurm_check.sh [path/to/pruning-game]   (default: target/debug/pruning-game)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${1:-$ROOT/target/debug/pruning-game}
[ -x "$BIN" ] || { echo "slurm_check: no binary at $BIN (cargo build first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "slurm_check: needs root (apt-get, daemons)" >&2; exit 1; }
start=$(date +%s)

step() { printf '\n== slurm: %s\n' "$*"; }

step "packages"
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

WORK=$(mktemp -d /tmp/slurm-check.XXXXXX)
cleanup() {
  # The daemons fork into the background: stop them through their pid files, wait for
  # them to go, then remove the scratch folder.
  local pids=()
  for f in "$WORK"/state/slurmd.pid "$WORK"/state/slurmctld.pid "$WORK"/munge/munged.pid; do
    if [ -f "$f" ]; then
      pids+=("$(cat "$f")")
      kill "${pids[-1]}" 2>/dev/null || true
    fi
  done
  for _ in $(seq 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step "munge"
mkdir -p "$WORK/munge"
chmod 700 "$WORK/munge"
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown root:root /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
MUNGE_SOCKET=$WORK/munge/munge.socket
munged --force --key-file=/etc/munge/munge.key --socket="$MUNGE_SOCKET" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
  --seed-file="$WORK/munge/munged.seed"
for _ in $(seq 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done
munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET" >/dev/null

step "slurm configuration"
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
HOST=$(hostname -s)
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log"
cat > "$WORK/slurm.conf" <<EOF
ClusterName=check
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/state/slurmctld.pid
SlurmdPidFile=$WORK/state/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$WORK/slurm.conf

step "daemons"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 0.3
done
sinfo

step "the sweep and the documented job array"
JOB=$WORK/job
mkdir -p "$JOB/sweeps" "$JOB/bin"
ln -s "$BIN" "$JOB/bin/pruning-game"
# A small sweep under the name the document's script uses: 12 cells, 3 shards.
cat > "$JOB/sweeps/phase.toml" <<'EOF'
seed = 42
replicates = 3
[grid]
players = 40
topology = { kind = "random", degree = 4.0 }
gamma = [0.0, 0.1, 0.2, 0.3]
beta = [0.0, 0.5, 1.0]
solver = "best-response"
EOF
# Section 2's script, exactly as printed in docs/slurm.md.
awk '/^## 2\./ {s=1} s && /^```sh$/ {c=1; next} c && /^```$/ {exit} c {print}' \
  docs/slurm.md > "$JOB/sweep.sbatch"
grep -q 'pruning-game simulate' "$JOB/sweep.sbatch" \
  || { echo "slurm_check: no job script found in docs/slurm.md section 2" >&2; exit 1; }
cd "$JOB"
mkdir -p logs
export PATH=$JOB/bin:$PATH
# Only the sizes change on the command line (they override #SBATCH lines): 3 shards of
# one core each fit this machine; the script itself is the document's.
ARRAY_JOB=$(sbatch --parsable --array=1-3 --cpus-per-task=1 --mem=200M --time=00:10:00 \
  sweep.sbatch)
echo "submitted array job $ARRAY_JOB"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$ARRAY_JOB" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$ARRAY_JOB")" ] || { echo "slurm_check: the array did not finish" >&2; exit 1; }
cat logs/*.out || true
for k in 1 2 3; do
  [ -f "results/shard-$k-of-3/results.csv" ] \
    || { echo "slurm_check: shard $k of 3 did not complete" >&2; cat "$WORK"/log/*.log >&2; exit 1; }
done

step "merge (the document's command) and compare"
# Section 4's merge line, with the document's 32 shards replaced by this run's 3.
MERGE=$(grep -m1 '^pruning-game merge' "$ROOT/docs/slurm.md" | sed 's/of-32/of-3/')
eval "$MERGE"
pruning-game simulate --quiet --config sweeps/phase.toml --out results/unsharded
strip() { sed 's/,[^,]*$//' "$1"; }
if ! diff <(strip results/merged/results.csv) <(strip results/unsharded/results.csv) >/dev/null; then
  echo "slurm_check: merged shards differ from the unsharded sweep" >&2
  exit 1
fi
rows=$(($(wc -l < results/merged/results.csv) - 1))
echo "slurm_check: ok — 3 shards merged to the unsharded result ($rows rows) in $(( $(date +%s) - start )) s"
