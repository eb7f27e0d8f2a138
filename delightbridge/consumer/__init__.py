"""The Pub/Sub edge: turns Gmail push notifications into incremental syncs."""
