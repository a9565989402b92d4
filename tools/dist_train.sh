#!/usr/bin/env bash
# Distributed training on torchrun: bash tools/dist_train.sh CONFIG GPUS [train.py args ...]
# GPUS is the number of processes on this node (CPU processes with gloo when there is no GPU).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node (docs/distributed.md);
# defaults 1, 0, 127.0.0.1 and 29500. PYTHON picks the interpreter.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py args ...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
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
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
