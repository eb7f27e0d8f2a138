"""A stateful Gmail API v1 simulator (aiohttp) for tests, the demo and benchmarks."""
