"""The ``delightbridge`` console script: one module per subcommand (``main`` lists them)."""
