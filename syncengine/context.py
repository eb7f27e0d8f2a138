"""What one sync of one service works with: the pool, its Gmail client, its run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from syncengine.gmail.client import GmailClient
from syncengine.parse import ParsedMessage, parse_message
from syncengine.runs import Run


@dataclass(frozen=True, slots=True)
class SyncContext:
    pool: asyncpg.Pool
    client: GmailClient
    account_id: str
    mailbox: str
    run: Run

    async def parse(self, resources: Mapping[str, Mapping[str, Any] | None]
                    ) -> tuple[list[ParsedMessage], list[str]]:
        """(parsed messages, ids Gmail no longer has). Parsing is CPU work: off the loop."""
        gone = [mid for mid, res in resources.items() if res is None]
        present = [res for res in resources.values() if res is not None]
        parsed = await asyncio.to_thread(
            lambda: [parse_message(res, self.mailbox) for res in present]
        )
        return parsed, gone
