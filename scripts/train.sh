#!/usr/bin/env bash
# Train a pipeline.config with periodic evaluation:
#   scripts/train.sh PIPELINE [MODEL_DIR] [more `tfodkit train` flags, e.g. --num_train_steps 2000]
# MODEL_DIR defaults to runs/<PIPELINE's file name without extension>; a second call resumes from it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_tfodkit.sh"

usage_unless 1 "PIPELINE [MODEL_DIR] [tfodkit train flags...]" "$@"
pipeline=$1
shift
model_dir=runs/$(config_name "$pipeline")
if [[ $# -ge 1 && $1 != -* ]]; then
    model_dir=$1
    shift
fi
run_tfodkit train --pipeline_config_path "$pipeline" --model_dir "$model_dir" "$@"
