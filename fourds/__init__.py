"""fourds: one-stage cross-domain distillation (4Ds) of a frozen teacher into a small student.

The library imports no orchestration code (``tests/test_architecture.py`` checks it):
ZenML steps in ``steps/`` wrap the functions of :mod:`fourds.runs`, pipelines in
``pipelines/`` wire the steps, and the command line (``fourds_app``) and the benchmark
runner sit on top. See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
