"""A pipeline run's work as plain functions over small records, with no orchestrator in sight.

Each function is one piece of a run (ingest, validate, resolve or train the teacher,
distil, evaluate, export, register, promote): it reads the records earlier pieces
returned (:mod:`fourds.runs.records`), writes into the run's folder and its one MLflow
run, and returns a record. ZenML steps (``steps/``) wrap each function one to one and
the pipelines (``pipelines/``) wire them; nothing here imports either, so the same
pieces run under any orchestrator, or in a test, as plain calls.

Modules: ``records`` (what the pieces hand each other), ``context`` (opening a run and
reopening its MLflow run), ``data``, ``teacher``, ``student``, ``evaluation``.
"""
