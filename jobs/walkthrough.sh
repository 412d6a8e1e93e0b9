#!/usr/bin/env bash
# The cluster walk-through: a Ray head and an MLflow server on this machine, then a run, a sweep and a
# resume, each submitted with `ray job submit` as on a real cluster. From the project's root, after
# `make install`, in a fresh shell:
#
#     bash jobs/walkthrough.sh
#
# It leaves the head and the MLflow server running so that you can open the pages the jobs print;
# its last lines say how to stop them. Kept small (2 epochs, 1,200 images, 3 sweep trials) to show
# the real thing in a few minutes. tests/test_jobs.py runs this script as it is, with the settings
# below taken from its environment (its own ports, home and smaller data).
set -e -o pipefail

STATE=${STATE:-$HOME/raydata_agent}  # MLflow's store and the runs' checkpoints, outside any job's temporary copy
VENV=${VENV:-.venv}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
RAY_START_ARGS=${RAY_START_ARGS:-}  # more `ray start` flags (the test: its own ports and temp dir)
JOB_ARGS=${JOB_ARGS:-}  # config overrides for every job (the test: smaller data)
SWEEP_ARGS=${SWEEP_ARGS:-sweep.grid.selection.selector=[random_dynamic,greedy] sweep.grid.selection.ratio=[0.5]}
# Split into words without globbing (the sweep's grid values hold [brackets]).
read -r -a RAY_START_ARGS <<< "$RAY_START_ARGS"
read -r -a JOB_ARGS <<< "$JOB_ARGS"
read -r -a SWEEP_ARGS <<< "$SWEEP_ARGS"

# First, the venv: `ray start` hands this PATH to every job, so a job's `python` is the project's.
source "$VENV/bin/activate"
mkdir -p "$STATE"
mlflow server --backend-store-uri "sqlite:///$STATE/mlflow.db" --artifacts-destination "$STATE/mlartifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 > "$STATE/mlflow.log" 2>&1 &
MLFLOW_PID=$!
ray start --head --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
    --disable-usage-stats "${RAY_START_ARGS[@]}"
export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT RAY_AUTH_MODE=token
MLFLOW=http://127.0.0.1:$MLFLOW_PORT
for _ in $(seq 180); do curl -sf "$MLFLOW/health" > /dev/null && break; sleep 1; done
STORAGE=$STATE/checkpoints
# The code's git state, for the runs' MLflow tags (a job's copy of the working dir has no .git to read).
GIT="$(printf '{"git_commit": "%s", "git_branch": "%s"}' "$(git rev-parse HEAD)" "$(git rev-parse --abbrev-ref HEAD)")"
SUBMIT=(ray job submit --working-dir . --metadata-json "$GIT" --)
COMMON=(tracking.uri="$MLFLOW" ray.storage_path="$STORAGE")

# 1. A run: one line per epoch, then its checkpoint and its page in MLflow.
"${SUBMIT[@]}" python jobs/train.py --config jobs/configs/shapes_greedy.yaml train.epochs=2 "${COMMON[@]}" "${JOB_ARGS[@]}"
CHECKPOINT=$(ls -td "$STORAGE"/*/checkpoint_*/ | head -1)  # run 1's last; its summary prints it too

# 2. A sweep: selectors x ratios, each trial nested under one parent run that holds the summary.
"${SUBMIT[@]}" python jobs/sweep.py --config jobs/configs/sweep_shapes.yaml train.epochs=2 "${COMMON[@]}" \
    "${SWEEP_ARGS[@]}" "${JOB_ARGS[@]}"

# 3. Resume run 1 from its last checkpoint, one epoch further (a new MLflow run, tagged resumed_from).
"${SUBMIT[@]}" python jobs/train.py --config jobs/configs/shapes_greedy.yaml train.epochs=3 "${COMMON[@]}" \
    train.resume_from="$CHECKPOINT" "${JOB_ARGS[@]}"

# 4. The UI: open the pages the jobs printed above (from the bare address, click "Model training" once).
echo "MLflow: $MLFLOW"
echo "When done: ray stop; kill $MLFLOW_PID   # the head, then the MLflow server"
