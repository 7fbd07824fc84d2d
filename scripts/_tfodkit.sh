# Shared by the scripts/*.sh wrappers (sourced, not run): their usage check, default names and the tfodkit they run.

# usage_unless MIN SYNOPSIS ARGS...: print "usage: SCRIPT SYNOPSIS" and exit 2 when ARGS are fewer than MIN or ask
# for help.
usage_unless() {
    local min=$1 synopsis=$2
    shift 2
    if [[ $# -lt $min || ${1-} == -h || ${1-} == --help ]]; then
        echo "usage: $0 $synopsis" >&2
        exit 2
    fi
}

# config_name PIPELINE: the pipeline.config's file name without its extension (the default run/export name).
config_name() {
    local name
    name=$(basename "$1")
    echo "${name%.*}"
}

# run_tfodkit COMMAND ARGS...: replace the script by `tfodkit COMMAND ARGS...`, the project's virtual
# environment's tfodkit when there is one, else tfodkit from PATH.
run_tfodkit() {
    local tfodkit
    tfodkit="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/tfodkit"
    [[ -x $tfodkit ]] || tfodkit=tfodkit
    exec "$tfodkit" "$@"
}
