"""DelightBridge Sync: Gmail mailboxes mirrored into PostgreSQL, in layers.

``core`` (settings, errors, logs) is the bottom; ``db`` (SQL and migrations) and
``sync`` (the engine) build on it; ``api`` and ``consumer`` are the thin edges that
call the engine; ``local`` runs everything on a laptop (embedded PostgreSQL, the
Gmail simulator); ``cli`` is the ``delightbridge`` console script. Nothing imports a
layer above its own (import-linter checks it in CI).
"""

__version__ = "0.1.0"
