#!/usr/bin/env bash
# Train the given configs (default: all shipped models) one after another, resuming each from
# its last checkpoint (NAME: a file in configs/, e.g. experiments/X); logs go to runs/NAME.log:
#   nohup scripts/train_all.sh neurostagenet altzcnn > runs/queue.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/experiments
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(neurostagenet effnet_probe neurostagenet_native altzcnn convnext_scratch neurostagenet_random_split)
for name in "${configs[@]}"; do
  echo "$(date -u +%FT%TZ) start $name"
  .venv/bin/mrivision train --config "configs/$name.yaml" --resume > "runs/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) done $name (exit $?)"
done
