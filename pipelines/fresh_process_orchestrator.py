"""A ZenML orchestrator that runs every step in its own fresh process, as a cluster runs each step in its own pod.

Each step gets a new, empty working directory, its own ``HOME`` and its own fourds
workspace (``$FOURDS_STEP_WORKSPACE``), and by default that folder is deleted when the
step ends: nothing one step writes to disk is there for the next. What steps share must
go through the stack's artifact store, the MLflow tracking server and the DVC remote,
exactly as on Kubeflow or Kubernetes. The offline cluster test (tests/cluster/) runs the
pipelines this way; it also lets a user check a remote stack's configuration on one
machine before a cluster is involved (docs/OPERATIONS.md).

Register it once per ZenML store::

    zenml orchestrator flavor register pipelines.fresh_process_orchestrator.FreshProcessOrchestratorFlavor
    zenml orchestrator register fresh -f fresh_process
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from zenml.entrypoints import StepEntrypointConfiguration
from zenml.enums import ExecutionMode
from zenml.orchestrators import BaseOrchestrator, BaseOrchestratorConfig, BaseOrchestratorFlavor

from fourds.runs.context import STEP_WORKSPACE_ENV

RUN_ID_ENV = "FOURDS_FRESH_PROCESS_RUN_ID"
PASSED_ON = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MLFLOW_TRACKING_URI",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
             "ZENML_ANALYTICS_OPT_IN", "MLFLOW_DISABLE_TELEMETRY", "GX_ANALYTICS_ENABLED", "DVC_NO_ANALYTICS",
             "DO_NOT_TRACK")
"""What a step's process inherits from the launching one: what a pod's spec would set, nothing about files."""
OUTPUT_TAIL = 4000
"""Characters of a failed step's output quoted in the error."""


class FreshProcessStepEntrypoint(StepEntrypointConfiguration):
    def prepare_code_environment(self) -> None:
        """The code is installed in the step's Python: stay in the empty working directory (the base class
        would change into /app to unpack downloaded code)."""


class FreshProcessOrchestratorConfig(BaseOrchestratorConfig):
    keep_step_folders: bool = False
    """Keep each step's working directory, HOME and workspace after it ends (for debugging)."""

    @property
    def is_local(self) -> bool:
        return True

    @property
    def is_synchronous(self) -> bool:
        return True


class FreshProcessOrchestrator(BaseOrchestrator):
    @property
    def config(self) -> FreshProcessOrchestratorConfig:
        return self._config  # type: ignore[return-value]

    @property
    def supported_execution_modes(self) -> list[ExecutionMode]:
        return [ExecutionMode.FAIL_FAST, ExecutionMode.STOP_ON_FAILURE, ExecutionMode.CONTINUE_ON_FAILURE]

    def get_orchestrator_run_id(self) -> str:
        return os.environ[RUN_ID_ENV]

    def submit_pipeline(self, snapshot, stack, base_environment, step_environments, placeholder_run=None) -> Any:
        """Run the steps one after another (the pipelines are chains), each in a new process and folder."""
        run_id = str(uuid.uuid4())
        command = [sys.executable, "-m", "zenml.entrypoints.entrypoint"]
        for step_name in snapshot.step_configurations:
            folder = Path(tempfile.mkdtemp(prefix=f"fourds-step-{step_name}-"))
            for part in ("cwd", "home", "workspace"):
                (folder / part).mkdir()
            environment = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
            environment |= dict(step_environments[step_name])
            environment |= {RUN_ID_ENV: run_id, "HOME": str(folder / "home"),
                            STEP_WORKSPACE_ENV: str(folder / "workspace")}
            arguments = FreshProcessStepEntrypoint.get_entrypoint_arguments(step_name=step_name,
                                                                            snapshot_id=snapshot.id)
            try:
                done = subprocess.run(command + arguments, cwd=folder / "cwd", env=environment,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            finally:
                if not self.config.keep_step_folders:
                    shutil.rmtree(folder, ignore_errors=True)
            sys.stdout.write(done.stdout)
            if done.returncode != 0:
                raise RuntimeError(f"step {step_name} failed in its own process (exit {done.returncode}): "
                                   f"...{done.stdout[-OUTPUT_TAIL:]}")
        return None


class FreshProcessOrchestratorFlavor(BaseOrchestratorFlavor):
    @property
    def name(self) -> str:
        return "fresh_process"

    @property
    def config_class(self) -> type[FreshProcessOrchestratorConfig]:
        return FreshProcessOrchestratorConfig

    @property
    def implementation_class(self) -> type[FreshProcessOrchestrator]:
        return FreshProcessOrchestrator
