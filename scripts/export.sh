#!/usr/bin/env bash
# Export a training run's latest checkpoint as a SavedModel with the OD API's serving signature:
#   scripts/export.sh PIPELINE MODEL_DIR [OUTPUT_DIRECTORY] [more `tfodkit export` flags, e.g. --input_type tf_example]
# OUTPUT_DIRECTORY defaults to exported/<PIPELINE's file name without extension>.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_tfodkit.sh"

usage_unless 2 "PIPELINE MODEL_DIR [OUTPUT_DIRECTORY] [tfodkit export flags...]" "$@"
pipeline=$1
model_dir=$2
shift 2
output_directory=exported/$(config_name "$pipeline")
if [[ $# -ge 1 && $1 != -* ]]; then
    output_directory=$1
    shift
fi
run_tfodkit export --pipeline_config_path "$pipeline" --trained_checkpoint_dir "$model_dir" \
    --output_directory "$output_directory" "$@"
