"""SQL and migrations: the only place that knows table layouts."""
