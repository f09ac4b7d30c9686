#!/usr/bin/env bash
# Screenshots of what a user sees after `fourds demo`: the MLflow run page, the registered version's page and
# the Great Expectations data docs, taken by headless Chromium (Debian: apt-get install chromium).
#
#   fourds demo --workspace /tmp/demo_ws
#   bash scripts/screenshots.sh /tmp/demo_ws docs/screenshots
set -euo pipefail
workspace="$(cd "${1:?usage: bash scripts/screenshots.sh WORKSPACE OUT_DIR}" && pwd)"
out="${2:?usage: bash scripts/screenshots.sh WORKSPACE OUT_DIR}"
mkdir -p "$out"
port="${PORT:-5077}"
python_bin="$(dirname "$0")/../.venv/bin/python"

MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$python_bin" -m mlflow server --host 127.0.0.1 --port "$port" \
    --workers 1 --backend-store-uri "sqlite:///$workspace/.fourds/mlflow.db" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done

shoot() {  # URL FILE: what a 1500x1100 window shows once the page has settled
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
        --window-size=1500,1100 --virtual-time-budget=20000 --screenshot="$2" "$1" 2>/dev/null
    echo "$2"
}

read -r experiment run_id < <("$python_bin" - "$port" <<'PY'
import sys
from mlflow import MlflowClient
client = MlflowClient(f"http://127.0.0.1:{sys.argv[1]}")
version = client.get_model_version_by_alias("fourds-student-target", "champion")
print(client.get_run(version.run_id).info.experiment_id, version.run_id)
PY
)
shoot "http://127.0.0.1:$port/#/experiments/$experiment/runs/$run_id" "$out/mlflow-run.png"
shoot "http://127.0.0.1:$port/#/models/fourds-student-target/versions/1" "$out/mlflow-version.png"
docs="$(ls -d "$workspace"/.fourds/runs/distill-target-*/validation/data_docs | tail -1)"
shoot "file://$docs/index.html" "$out/data-docs.png"
