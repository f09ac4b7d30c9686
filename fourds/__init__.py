"""fourds: one-stage cross-domain distillation (4Ds) of a frozen teacher into a small student.

The library imports no orchestration code: ZenML steps in ``steps/`` and pipelines in
``pipelines/`` wrap it, and so do the CLI and the benchmark runner.
"""

__version__ = "0.1.0"
