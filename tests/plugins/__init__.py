"""Pytest plugins shared by the suites: the Gmail simulator and the Pub/Sub emulator."""
