#!/usr/bin/env bash
# Training on a SLURM cluster, one task per GPU:
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [GPUS] [train.py args ...]
# GPUS (total, default 8; also read from the environment), GPUS_PER_NODE (default: GPUS, at most 8),
# CPUS_PER_TASK (default 5) and SRUN_ARGS (extra srun options) tune the job; PORT sets the rendezvous port.
# Rank 0's node is the master (mmspectral reads SLURM's variables: --launcher slurm). docs/distributed.md.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [GPUS] [train.py args ...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    GPUS=$1
    shift
fi
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)

# SRUN_ARGS is split into words on purpose.
# shellcheck disable=SC2086
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$HERE/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
