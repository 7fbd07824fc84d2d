#!/usr/bin/env bash
# Train a pipeline.config with periodic evaluation:
#   scripts/train.sh PIPELINE [MODEL_DIR] [more `tfodkit train` flags, e.g. --num_train_steps 2000]
# MODEL_DIR defaults to runs/<PIPELINE's file name without extension>; a second call resumes from it.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    echo "usage: $0 PIPELINE [MODEL_DIR] [tfodkit train flags...]" >&2
    exit 2
fi
pipeline=$1
shift
if [[ $# -ge 1 && $1 != -* ]]; then
    model_dir=$1
    shift
else
    name=$(basename "$pipeline")
    model_dir=runs/${name%.*}
fi

# The project's virtual environment when there is one, else tfodkit from PATH.
venv_tfodkit="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/tfodkit"
if [[ -x $venv_tfodkit ]]; then
    tfodkit=$venv_tfodkit
else
    tfodkit=tfodkit
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec "$tfodkit" train --pipeline_config_path "$pipeline" --model_dir "$model_dir" "$@"
