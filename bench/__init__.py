"""The benchmark harness: ``python -m bench`` (see ``bench/__main__.py`` and BENCHMARKS.md).

Modules: ``harness`` (sizes, shared state), ``env`` (machine, PostgreSQL, Pub/Sub),
``sim`` (the simulator in its own process), ``procs`` / ``child`` (measured clients in
processes of their own), one module per scenario (``quota``, ``ingest``, ``memory``,
``freshness``, ``throughput``, ``transport``), ``reference`` (the original algorithm),
``fleet`` (the watched mailboxes of scenarios 3-4), ``profiling``, ``stats``, ``report``.
"""
