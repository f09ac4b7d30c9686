"""The ``fourds`` application: the command line on top of the pipelines and the library.

Layers, top to bottom (docs/ARCHITECTURE.md): ``fourds_app`` (this package: commands,
sessions, what a command prints) -> ``pipelines`` (ZenML pipelines, the launcher,
schedules) -> ``steps`` (one ZenML step per ``fourds.runs`` function) -> ``fourds`` (the
library, which imports none of the layers above it).
"""
