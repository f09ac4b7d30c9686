# The few commands people run. `make setup` once, then `make demo` / `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast lock lock-kubeflow benchmark-quick clean-workspace

setup:  ## create .venv from the lock file and install fourds (editable)
	bash scripts/setup_env.sh $(VENV)

demo:  ## the main job: teacher + 4Ds distillation on generated demo domains, local stores
	$(BIN)/fourds demo

test:  ## the whole test suite (real local stack; real-data tests skip without ../shared/data)
	$(BIN)/python -m pytest -q

test-fast:  ## unit tests only (skips the end-to-end pipeline runs)
	$(BIN)/python -m pytest -q -m "not slow"

lock:  ## re-resolve requirements.in into requirements.lock
	uv pip compile requirements.in -p 3.11 -o requirements.lock

lock-kubeflow:  ## re-resolve the Kubeflow/Kubernetes extra (with the base) into requirements-kubeflow.lock
	uv pip compile requirements.in requirements-kubeflow.in -p 3.11 -o requirements-kubeflow.lock

benchmark-quick:  ## the quick benchmark suite on ../shared/data (about 30 min on 2 CPU cores)
	$(BIN)/python -m benchmarks.run --suite quick

clean-workspace:  ## forget local runs: MLflow DB, run folders, ingested data (not the DVC cache)
	rm -rf .fourds data
