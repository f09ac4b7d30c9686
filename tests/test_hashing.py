"""One hashing module: the recorded hashes keep the values the code wrote before it existed.

Every pinned value below was computed with the code each hash used to have in its own
module (config.py, training/checkpoints.py, training/recipes.py, benchmarks/suites.py,
export/onnx.py, data/sources.py). A change here means recorded config hashes, checkpoints
or benchmark cells no longer match: never update a value to make a test pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest

REPO_ROOT = str(Path(__file__).resolve().parents[1])
if REPO_ROOT not in sys.path:  # benchmarks/ sits beside fourds/, not installed (as in tests/benchmarks/conftest.py)
    sys.path.insert(0, REPO_ROOT)

from benchmarks.suites import SUITES, fingerprint  # noqa: E402
from fourds.config import FourDsConfig, OptimizerConfig, RunConfig, TrainConfig  # noqa: E402
from fourds.hashing import FILE_CHUNK_BYTES, SPACED_SEPARATORS, canonical_json_sha256, file_sha256  # noqa: E402
from fourds.training.checkpoints import config_fingerprint  # noqa: E402
from fourds.training.recipes import _checkpoint_key  # noqa: E402


def test_file_sha256_streams_a_file_larger_than_one_chunk(tmp_path: Path) -> None:
    content = bytes(range(256)) * 9000  # a little over two chunks
    assert len(content) > 2 * FILE_CHUNK_BYTES
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    assert file_sha256(path) == file_sha256(str(path)) == hashlib.sha256(content).hexdigest()
    assert file_sha256(path) == "62bf4dac314280c65bfec2a49872d67974db10af14c8a4b84c70166fb11252b9"


def test_empty_file() -> None:
    assert file_sha256(Path("/dev/null")) == hashlib.sha256(b"").hexdigest()


def test_canonical_json_ignores_key_order_and_keeps_both_spellings() -> None:
    assert canonical_json_sha256({"b": 1, "a": [1, 2]}) == canonical_json_sha256({"a": [1, 2], "b": 1})
    assert canonical_json_sha256({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert canonical_json_sha256({"a": 1}, separators=SPACED_SEPARATORS) == hashlib.sha256(b'{"a": 1}').hexdigest()


def test_a_value_json_cannot_spell_needs_a_default() -> None:
    with pytest.raises(TypeError):
        canonical_json_sha256({"where": Path("/x")})
    assert canonical_json_sha256({"where": Path("/x")}, default=str) == canonical_json_sha256({"where": "/x"})


def test_run_config_hash_is_pinned() -> None:
    """Changes when RunConfig gains a field or a default (here: the adapter options and defaults of issue 15)."""
    assert RunConfig().config_hash() == "1378ef69786982d6307e2dcf606afcaaf26ea7d0add6c7e520100d6f2bf905d2"
    assert RunConfig(method="kd").config_hash() == "62dd13b82d465ef58508bc4436c10d8355980e758b327657672408cd1a69f845"


# The settings before the adapter study changed the defaults (issue 15): runs made with them keep their keys.
BEFORE_THE_STUDY = FourDsConfig(adapter_initial_mix=0.5, adapter_bn_affine=False, adapter_im_weight=0.0,
                                adapter_tune_early=False)
SGD_TEACHER = TrainConfig(optimizers={"teacher": OptimizerConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)})


def test_checkpoint_config_fingerprint_is_pinned() -> None:
    assert config_fingerprint(SGD_TEACHER) == "4ea28da969f977ebc075e37e109684ef6c4ed8e848184e6a523d911886a04395"
    assert config_fingerprint(TrainConfig()) == "f55e5104b8178ae5369da828d73ec99ab10c149c64f99977e141cd35022022c2"


def test_recipe_checkpoint_keys_are_pinned() -> None:
    """Spaced JSON separators: checkpoints written before the hashing module still resume (and where data versions
    are stored, ``data.dvc_remote``, is no part of a checkpoint's identity); the adapter options added later
    change no key at their old values."""
    before = RunConfig(fourds=BEFORE_THE_STUDY)
    assert _checkpoint_key(before, "distill", "abc") == "89f80eb6535bf8eb635b17929ff5f3604f789d66eb5374df0861907957084bde"
    assert _checkpoint_key(before, "teacher") == "3392a76e1383ffba76375a2c1b629322812c9fbed8546522c9d4234860ab0f89"
    today = RunConfig()
    assert _checkpoint_key(today, "distill", "abc") == "6f9f1930f8e45b7a54d2b0f13350312b43ada30740c619e681539069ec23fcc6"


def test_benchmark_fingerprints_are_pinned() -> None:
    """The recorded benchmark cells are keyed by these: a change would recompute every cell."""
    assert fingerprint({"b": [1.5, "é"], "a": 1, "where": Path("/x/y")}) == "c4165cfa1d8089f2"
    assert fingerprint(dataclasses.replace(SUITES["quick"], fourds=BEFORE_THE_STUDY).key_settings()) == "08889a0a5319b61a"
    assert fingerprint(SUITES["quick"].key_settings()) == "4c747285bc008e6f"
