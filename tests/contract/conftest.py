"""Fixtures for the contract tests with the web app's deploy tool (drizzle-kit, from npm)."""

from __future__ import annotations

import pytest

from tests.contract.drizzle import DrizzleKit, install


@pytest.fixture(scope="session")
def drizzle_kit() -> DrizzleKit:
    """drizzle-kit at the web app's version, installed once per content of webapp/."""
    return install()
