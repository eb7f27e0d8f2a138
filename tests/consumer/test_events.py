"""The consumer delivers new-mail events (EVENTS_URL): new mail pushed by Gmail reaches
the web app's receiver, signed, and the metrics count it."""

from __future__ import annotations

import asyncio

from tests.consumer.conftest import Env
from tests.syncengine.test_outbox import SECRET, Receiver, _free_port, serving


async def test_new_mail_reaches_the_receiver_and_is_counted(env: Env) -> None:
    await env.connect("svc-a", "a@svc.example")
    port = _free_port()
    receiver = Receiver()
    settings = env.settings(events_url=f"http://127.0.0.1:{port}/hooks/sync",
                            events_secret=SECRET)
    async with serving(receiver, port), env.run(settings=settings) as running:
        assert "events" in {t.get_name() for t in asyncio.all_tasks()}
        new_id = env.sim.deliver("a@svc.example", subject="Where is my order?")
        await receiver.wait_for(1)
        assert receiver.received[0]["type"] == "message.received"
        assert receiver.received[0]["data"]["gmailMessageId"] == new_id
        await running.recorder.wait_for(lambda r: any(a.delivered for a in r.event_attempts))
        assert running.sample("delightbridge_events_delivered_total",
                              kind="message.received") == 1
        assert running.sample("delightbridge_events_failed_attempts_total",
                              reason="connection") == 0


async def test_without_a_receiver_no_event_is_recorded(env: Env) -> None:
    await env.connect("svc-b", "b@svc.example")
    async with env.run() as running:
        assert "events" not in {t.get_name() for t in asyncio.all_tasks()}
        env.sim.deliver("b@svc.example", subject="Hello")
        await running.recorder.wait_for(lambda r: any(o.status == "synced"
                                                      for _, o in r.outcomes))
    assert await env.pool.fetchval("SELECT count(*) FROM delightbridge_sync.events") == 0
