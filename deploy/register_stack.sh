#!/usr/bin/env bash
# Register (once) and activate a fourds ZenML stack from its YAML recipe.
#
#   pip install '.[kubeflow]'               # or a venv from requirements-kubeflow.lock
#   zenml login https://zenml.example.com   # remote orchestrators need a ZenML server
#   source deploy/common.env                # copied from deploy/common.env.example
#   bash deploy/register_stack.sh deploy/kubeflow/stack.yaml      # or deploy/kubernetes/stack.yaml
#
# Fills the recipe's ${VARIABLES} from the environment (refusing to go on if one is unset),
# stores the S3 keys as the ZenML secrets `fourds_s3` (artifact store) and `fourds_s3_env` (the steps'
# environment, for the DVC remote), imports the stack
# and makes it the active one. A stack already registered is only activated; change a
# component with `zenml <component-kind> update ...`. See docs/OPERATIONS.md ("Scale-out").
set -euo pipefail
recipe="${1:?usage: bash deploy/register_stack.sh deploy/<kubeflow|kubernetes>/stack.yaml}"
[ -f "$recipe" ] || { echo "error: no stack recipe at $recipe" >&2; exit 2; }
python_bin="${PYTHON:-python3}"
export FOURDS_S3_ENDPOINT="${FOURDS_S3_ENDPOINT:-}"

rendered="$(mktemp -d)/stack.yaml"
"$python_bin" - "$recipe" "$rendered" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
unset = sorted({name for name in re.findall(r"\$\{(\w+)\}", text) if name not in os.environ})
if unset:
    sys.exit(f"error: set {', '.join(unset)} first (see deploy/common.env.example)")
text = os.path.expandvars(text)
# An empty endpoint means AWS S3 itself: drop the MinIO endpoint line.
text = re.sub(r'^ *client_kwargs: \{endpoint_url: ""\}.*\n', "", text, flags=re.M)
open(sys.argv[2], "w").write(text)
PY
stack_name="$(sed -n 's/^stack_name: *//p' "$rendered")"

if zenml stack set "$stack_name" >/dev/null 2>&1; then
    echo "stack $stack_name was already registered; it is now the active stack"
    exit 0
fi
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (and AWS_SECRET_ACCESS_KEY) for the artifact store bucket}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY for the artifact store bucket}"
zenml secret create fourds_s3 --aws_access_key_id="$AWS_ACCESS_KEY_ID" \
        --aws_secret_access_key="$AWS_SECRET_ACCESS_KEY" >/dev/null 2>&1 ||
    zenml secret update fourds_s3 --aws_access_key_id="$AWS_ACCESS_KEY_ID" \
        --aws_secret_access_key="$AWS_SECRET_ACCESS_KEY"
# The same keys as environment variables of every step (run_config.yaml: secrets), for the DVC remote.
zenml secret create fourds_s3_env --AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
        --AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" >/dev/null 2>&1 ||
    zenml secret update fourds_s3_env --AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
        --AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
zenml stack import "$stack_name" -f "$rendered" </dev/null
zenml stack set "$stack_name"
