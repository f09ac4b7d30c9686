"""The example in docs/TRAINING.md must keep running as the code changes."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "TRAINING.md"


def test_the_trainer_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, f"{DOC} has no python example"
    exec(compile(blocks[0], f"{DOC}:example", "exec"), {"__name__": "docs_example"})  # noqa: S102 (our own doc)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed[:3]] == ["epoch 1", "epoch 2", "epoch 3"]
    assert printed[-1].startswith("12 ")  # 32 images, batches of 8, 3 epochs
