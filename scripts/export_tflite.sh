#!/usr/bin/env bash
# Export a training run's latest checkpoint as a .tflite detector with metadata (MediaPipe, Task Library):
#   scripts/export_tflite.sh PIPELINE MODEL_DIR [OUTPUT_DIRECTORY] [more `tfodkit export-tflite` flags]
# e.g. --quantize int8 --representative 'tfrecords/train-*.tfrecord' for a full-integer model with uint8 input.
# OUTPUT_DIRECTORY defaults to exported/<PIPELINE's file name without extension>_tflite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_tfodkit.sh"

usage_unless 2 "PIPELINE MODEL_DIR [OUTPUT_DIRECTORY] [tfodkit export-tflite flags...]" "$@"
pipeline=$1
model_dir=$2
shift 2
output_directory=exported/$(config_name "$pipeline")_tflite
if [[ $# -ge 1 && $1 != -* ]]; then
    output_directory=$1
    shift
fi
run_tfodkit export-tflite --pipeline_config_path "$pipeline" --trained_checkpoint_dir "$model_dir" \
    --output_directory "$output_directory" "$@"
