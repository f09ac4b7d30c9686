"""Peak memory of an ingest as the number of images grows: it should stay flat.

Generates folders of tiny PNGs (10 classes), then ingests each in a fresh child process
(so peaks do not mix) into a fresh workspace, with the progress bar on, and reports the
child's peak resident set size before and after the ingest::

    .venv/bin/python benchmarks/ingest_memory.py                 # 2,000 and 10,000 images
    .venv/bin/python benchmarks/ingest_memory.py --counts 1000 5000 20000

Work folders go to benchmarks/work/ingest_memory (git-ignored); they are reused between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_WORK = Path(__file__).resolve().parent / "work" / "ingest_memory"
CLASSES = 10
IMAGE_SIDE = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "WORKSPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure_ingest(Path(args.child[0]), Path(args.child[1]))
        return

    rows = []
    for count in args.counts:
        folder = make_folder(args.work / f"images_{count}", count)
        workspace = args.work / f"workspace_{count}"
        shutil.rmtree(workspace, ignore_errors=True)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(folder), str(workspace)],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"\n{'images':>8} {'seconds':>8} {'RSS after imports MB':>21} {'peak RSS MB':>12} {'growth MB':>10}")
    for row in rows:
        growth = row["peak_rss_mb"] - row["baseline_rss_mb"]
        print(
            f"{row['images']:>8} {row['seconds']:>8.1f} {row['baseline_rss_mb']:>21.1f} "
            f"{row['peak_rss_mb']:>12.1f} {growth:>10.1f}"
        )


def make_folder(folder: Path, count: int) -> Path:
    """``count`` distinct random grayscale PNGs spread over 10 class folders (kept if already there)."""
    import numpy as np
    from PIL import Image

    if folder.is_dir() and sum(1 for _ in folder.rglob("*.png")) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(count)
    for index in range(count):
        class_dir = folder / str(index % CLASSES)
        class_dir.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
        Image.fromarray(pixels).save(class_dir / f"{index:06d}.png")
    return folder


def measure_ingest(folder: Path, workspace_root: Path) -> None:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from fourds.data.ingest import ingest_domain
    from fourds.workspace import Workspace

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    result = ingest_domain(folder, "bench", Workspace(workspace_root), progress=True)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "images": result.num_images,
                "seconds": round(seconds, 2),
                "baseline_rss_mb": baseline,
                "peak_rss_mb": _peak_rss_mb(),
                "domain_md5": result.domain_md5,
            }
        )
    )


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


if __name__ == "__main__":
    main()
