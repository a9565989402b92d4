#!/usr/bin/env bash
# Distributed evaluation on torchrun: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args ...]
# GPUS is the number of processes on this node (CPU processes with gloo when there is no GPU).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node (docs/distributed.md);
# defaults 1, 0, 127.0.0.1 and 29500. PYTHON picks the interpreter.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args ...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
