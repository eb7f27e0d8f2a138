"""The sync engine: Gmail client, full and incremental sync, shared by api and consumer."""
