"""DelightBridge Sync: the process shell shared by every component.

Settings, logging, the domain exception hierarchy, the embedded PostgreSQL used on
fresh machines, and the ``delightbridge`` console script. The sync decisions live in
``syncengine``; SQL and migrations in ``db``; the edges in ``api`` and ``consumer``.
"""

__version__ = "0.1.0"
