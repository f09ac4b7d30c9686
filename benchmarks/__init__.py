"""The benchmark: does a 4Ds student beat the alternatives a practitioner has, and at what cost?

``python -m benchmarks.run --suite quick`` runs every method of BENCHMARK.md side by
side on real cross-domain data, through the library (``fourds.training.recipes``),
and writes a JSON record, a markdown table and a plot under ``benchmarks/results/``.

| module | what it owns |
|---|---|
| ``suites.py`` | the named suites (smoke, quick, full): tasks, label budgets, seeds, schedules |
| ``domains.py`` | image-folder domains: unpacking the shared tarballs, cached per-image tables, splits |
| ``cells.py`` | one cell (task, budget, method, seed) and the teacher, run and recorded; the resumable store |
| ``deployment.py`` | per task: parameters, ONNX size, parity and latency of student vs teacher |
| ``provenance.py`` | machine, git commit, command, load average, data checksums |
| ``report.py`` | aggregation of the recorded cells into the JSON, markdown and plot |
| ``run.py`` | the command line |
"""
