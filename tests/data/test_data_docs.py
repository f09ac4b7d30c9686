"""The example in docs/DATA.md must keep running as the code changes."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "DATA.md"


def test_the_data_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, f"{DOC} has no python example"
    exec(compile(blocks[0], f"{DOC}:example", "exec"), {"__name__": "docs_example"})
    ingested, validated, dataset, unlabelled = capsys.readouterr().out.splitlines()[-4:]
    assert ingested.startswith("140 {'train': ") and ingested.endswith(".dir")
    assert "'unlabelled': 20}" in ingested
    assert validated == "True index.html"
    assert dataset.endswith("(3, 32, 32) 0")
    assert unlabelled == "20 (3, 32, 32) -1"
