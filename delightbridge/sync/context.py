"""What one sync of one service works with: the pool, its Gmail client, its run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from delightbridge.core.errors import GmailError
from delightbridge.sync.gmail.client import GmailClient
from delightbridge.sync.parse import ParsedMessage, parse_message
from delightbridge.sync.runs import Run

Resource = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SyncContext:
    pool: asyncpg.Pool
    client: GmailClient
    account_id: str
    mailbox: str
    run: Run
    # Record new-mail events (delightbridge.sync.events) with what this sync writes.
    emit_events: bool = False

    async def parse(self, resources: Mapping[str, Resource | None]
                    ) -> tuple[list[ParsedMessage], list[str]]:
        """(parsed messages, ids Gmail no longer has). Parsing is CPU work: off the loop.

        Text bodies too large for Gmail to inline arrive as attachment ids: they are
        fetched (``messages.attachments.get``) and the message parsed again with them.
        """
        gone = [mid for mid, res in resources.items() if res is None]
        present = [res for res in resources.values() if res is not None]
        parsed = await asyncio.to_thread(
            lambda: [parse_message(res, self.mailbox) for res in present]
        )
        incomplete = [i for i, m in enumerate(parsed) if m.missing_body_parts]
        for index in incomplete:
            parsed[index] = await self._complete(present[index], parsed[index])
        return parsed, gone

    async def _complete(self, resource: Resource, message: ParsedMessage) -> ParsedMessage:
        bodies: dict[str, bytes | str] = {}
        for ref in message.missing_body_parts:
            call = self.client.calls.get_attachment(message.gmail_message_id, ref.attachment_id)
            try:
                answer = await self.client.execute_optional(call)
            except GmailError:
                continue  # parse_message notes the body it could not read
            if answer and isinstance(answer.get("data"), str):
                bodies[ref.attachment_id] = answer["data"]
        if not bodies:
            return message
        return await asyncio.to_thread(
            parse_message, resource, self.mailbox, fetched_bodies=bodies
        )
