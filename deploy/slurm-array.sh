#!/bin/bash
# A Slurm job array: task K of N classifies shard K/N of the images on a shared filesystem and
# appends to its own JSONL file there. Requeued or resubmitted tasks resume where their file
# ends (--resume skips what is answered and repairs a line cut by a kill).
#
#   sbatch deploy/slurm-array.sh                       # defaults below
#   IMAGES=/scratch/photos sbatch deploy/slurm-array.sh
#   cat "$RESULTS"/shard-*.jsonl > all.jsonl
#
#SBATCH --job-name=vit-hybrid
#SBATCH --array=1-8
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=vit-hybrid-%A_%a.log
# On GPU partitions, add: #SBATCH --gres=gpu:1
set -euo pipefail

MODEL="${MODEL:-/shared/models/vit-hybrid-base-bit-384}"
IMAGES="${IMAGES:-/shared/images}"
RESULTS="${RESULTS:-/shared/results}"
# The array's size is N: every task must agree on it.
SHARDS="${SLURM_ARRAY_TASK_COUNT:?run this with sbatch --array=1-N}"
K="${SLURM_ARRAY_TASK_ID:?run this with sbatch --array=1-N}"

mkdir -p "$RESULTS"
exec vit-hybrid classify \
    --model "$MODEL" \
    --shard "$K/$SHARDS" \
    --output "$RESULTS/shard-$K-of-$SHARDS.jsonl" \
    --resume \
    --top-k 5 \
    "$IMAGES"
