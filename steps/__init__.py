"""ZenML steps: each wraps one function of :mod:`fourds.runs` and adds nothing but the step itself.

One step per file, named like the step. Records (``fourds.runs.records``) travel between
steps as JSON in the artifact store; the functions they wrap own every decision.
"""
