"""The exit statuses of the ``fourds`` command line, defined once (documented in docs/PIPELINES.md and,
for ``fourds watch``, docs/OPERATIONS.md). Kept free of imports: ``fourds --help`` and the watcher load it."""

EXIT_OK = 0
"""Success (``watch``: nothing to do, or every due run succeeded)."""
EXIT_RUN_FAILED = 1
"""A run started and failed (``watch``: at least one due domain could not be run or its run failed)."""
EXIT_USAGE = 2
"""The command could not start: bad arguments, configuration or paths."""
EXIT_LOCKED = 3
"""Another process holds a lock the command needs; nothing was done. ``watch``: another watcher holds this
workspace's lock. ``distill``, ``teacher train``, ``demo``: another run of the same domain is in progress."""
EXIT_NOT_PROMOTED = 4
"""``distill``, ``demo``, ``watch``: the run(s) finished and registered a student, but the promotion gates kept
it a challenger (for ``watch``, at least one; a failure, exit 1, takes precedence)."""
