"""ZenML steps: thin adapters from the orchestrator to the ``fourds`` library.

``steps/<stage>/<verb>.py`` holds one step each. A step turns its inputs (small records
from :mod:`steps.artifacts`, file paths inside the run folder) into one library call
and returns a named record; it holds no training, validation or registry logic.
"""
