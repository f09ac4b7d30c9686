#!/usr/bin/env bash
# Create a virtual environment from a lock file and install fourds into it.
# Usage: bash scripts/setup_env.sh [VENV_DIR] [LOCK_FILE]
#   LOCK_FILE defaults to requirements.lock; requirements-kubeflow.lock adds the Kubeflow extra.
set -euo pipefail
venv="${1:-.venv}"
lock="${2:-requirements.lock}"
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null || python_bin=python3

# uv resolves and installs the ~700 locked packages in well under a minute;
# it is itself a PyPI package, so install it first when missing.
if ! command -v uv >/dev/null 2>&1; then
    "$python_bin" -m pip install --quiet --user uv 2>/dev/null || "$python_bin" -m pip install --quiet uv
    export PATH="$HOME/.local/bin:$PATH"
fi

uv venv --quiet --allow-existing -p "$python_bin" "$venv"
uv pip install --quiet -p "$venv/bin/python" -r "$lock"
uv pip install --quiet -p "$venv/bin/python" --no-deps -e .
echo "environment ready: $venv (activate with: source $venv/bin/activate)"
