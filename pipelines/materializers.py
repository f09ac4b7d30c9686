"""How records that carry files (``fourds.runs.records.WithFiles``) are kept in ZenML's artifact store.

The record's facts go to ``record.json``; each file (safetensors weights, an ONNX model)
is written beside it as itself, byte for byte: the artifact store holds ordinary files
that any tool can open, and nothing is pickled (ZenML's own PyTorch materializer would
cloudpickle the model). Importing this module registers the materializer for every
``WithFiles`` subclass; the pipelines import it before they are compiled.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer

from fourds.runs.records import ExportedOnnx, TeacherWeights, TrainedWeights, WithFiles

RECORD_FILE = "record.json"
FILES_FOLDER = "files"


class WithFilesMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (TeacherWeights, TrainedWeights, ExportedOnnx)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, data: WithFiles) -> None:
        with self.artifact_store.open(os.path.join(self.uri, RECORD_FILE), "wb") as handle:
            handle.write(data.model_dump_json().encode())
        self.artifact_store.makedirs(os.path.join(self.uri, FILES_FOLDER))  # a no-op on object stores
        for name, content in data.files.items():
            with self.artifact_store.open(os.path.join(self.uri, FILES_FOLDER, name), "wb") as handle:
                handle.write(content)

    def load(self, data_type: type[WithFiles]) -> WithFiles:
        with self.artifact_store.open(os.path.join(self.uri, RECORD_FILE), "rb") as handle:
            facts = json.loads(handle.read())
        folder = os.path.join(self.uri, FILES_FOLDER)
        files = {}
        if self.artifact_store.exists(folder):
            for name in sorted(self.artifact_store.listdir(folder)):
                name = os.path.basename(str(name))
                with self.artifact_store.open(os.path.join(folder, name), "rb") as handle:
                    files[name] = handle.read()
        return data_type.model_validate({**facts, "files": files})

    def extract_metadata(self, data: WithFiles) -> dict[str, Any]:
        """The sha256 and size of each file, shown on the artifact's page."""
        return {f"{name} sha256": hashlib.sha256(content).hexdigest() for name, content in data.files.items()} | {
            f"{name} bytes": len(content) for name, content in data.files.items()}
