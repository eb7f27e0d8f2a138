"""Operations: health, readiness, metrics, the OpenAPI document, structured logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from delightbridge.api.keys import HEALTH, METRICS, POOL
from delightbridge.api.metrics import ApiMetrics
from delightbridge.api.openapi import document
from delightbridge.core import logs
from tests.api.conftest import Api


async def test_healthz_needs_no_session(api: Api) -> None:
    reply = await api.call("GET", "/healthz", cookie=None)
    assert (reply.status, reply.json) == (200, {"ok": True})


async def test_readyz_checks_the_database_and_migrations(api: Api) -> None:
    reply = await api.ops_get("/readyz")
    assert (reply.status, json.loads(reply.body)) == (200, {"ok": True})
    version = await api.pool.fetchval(
        "DELETE FROM delightbridge_sync.schema_migrations WHERE version = "
        "(SELECT max(version) FROM delightbridge_sync.schema_migrations) RETURNING version")
    await api.app[HEALTH].refresh()  # what the next periodic check finds
    reply = await api.ops_get("/readyz")
    assert reply.status == 503
    assert json.loads(reply.body)["error"] == "migrations_pending"
    assert version in json.loads(reply.body)["message"]


async def test_database_down_is_503_not_500(api: Api) -> None:
    await api.app[POOL].close()
    await api.app[HEALTH].refresh()
    reply = await api.ops_get("/readyz")
    assert (reply.status, json.loads(reply.body)["error"]) == (503, "database_unavailable")
    reply = await api.call("POST", "/api/services/service-123/sync")
    assert (reply.status, reply.json["error"]) == (503, "database_unavailable")
    assert reply.headers["Retry-After"] == "5"
    assert (await api.call("GET", "/healthz", cookie=None)).status == 200  # still alive
    assert (await api.ops_get("/healthz")).status == 200


async def test_metrics_and_readiness_are_not_on_the_public_port(api: Api) -> None:
    """Hardening #17 item 7: anyone who reaches the API reached /metrics too."""
    for path in ("/metrics", "/readyz"):
        reply = await api.call("GET", path, cookie=None)
        assert (reply.status, reply.json["error"]) == (404, "not_found"), path
        assert (await api.ops_get(path)).status == 200


async def test_probes_and_scrapes_cost_no_database_query(api: Api) -> None:
    """With every pool connection held elsewhere, /readyz and /metrics still answer at
    once from the last periodic check: a scrape or a probe is not a query."""
    pool = api.app[POOL]
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        for _ in range(20):
            readiness = await asyncio.wait_for(api.ops_get("/readyz"), timeout=2)
            assert readiness.status == 200, readiness.body
            scrape = await asyncio.wait_for(api.ops_get("/metrics"), timeout=2)
            assert b"delightbridge_watches" in scrape.body
    finally:
        for conn in held:
            await pool.release(conn)


async def test_a_stuck_health_check_turns_readiness_red(api: Api) -> None:
    check = api.app[HEALTH]
    check.checked_at = time.monotonic() - 4 * check.interval  # no result for too long
    reply = await api.ops_get("/readyz")
    assert (reply.status, json.loads(reply.body)["error"]) == (503, "not_checked")


async def test_metrics_are_prometheus_text(api: Api) -> None:
    await api.call("GET", "/healthz", cookie=None)
    reply = await api.ops_get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body.decode()
    assert 'delightbridge_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in (
        text)
    for family in ("delightbridge_sync_runs_total", "delightbridge_sync_seconds",
                   "delightbridge_gmail_calls_total", "delightbridge_gmail_errors_total",
                   "delightbridge_http_request_seconds"):
        assert f"# TYPE {family}" in text


async def test_metrics_show_watch_health_from_the_database(api: Api) -> None:
    """Renewal failures of the cron job (another process) show in the API's metrics."""
    for n, (expires, error) in enumerate([
            ("now() + interval '6 days'", None), ("now() + interval '6 days'", "boom"),
            ("now() + interval '1 day'", None), ("now() - interval '1 hour'", None),
            ("NULL", None)]):
        service_id = f"svc-{n}"
        await api.add_service(service_id, f"{service_id}@example.com", refresh_token="r")
        await api.pool.execute(
            "INSERT INTO delightbridge_sync.services (account_id, watch_expires_at, watch_error) "
            f"VALUES ($1, {expires}, $2)", service_id, error)
    await api.add_service("svc-off", "off@example.com", refresh_token=None)
    await api.pool.execute("DELETE FROM gmail_accounts WHERE id = 'svc-0'")  # queues a stop
    await api.app[HEALTH].refresh()
    text = (await api.ops_get("/metrics")).body.decode()
    assert 'delightbridge_watches{state="active"} 1.0' in text
    assert 'delightbridge_watches{state="expiring"} 1.0' in text
    assert 'delightbridge_watches{state="lapsed"} 2.0' in text
    assert 'delightbridge_watches{state="failing"} 1.0' in text
    assert "delightbridge_watch_stops_pending 1.0" in text


async def test_openapi_document_is_served_and_covers_every_route(api: Api) -> None:
    reply = await api.call("GET", "/api/openapi.json", cookie=None)
    assert reply.status == 200
    served = reply.json
    assert served == document()
    assert served["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, item in served["paths"].items()
                  for method in item}
    routed = set()
    for route in api.app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None:
            continue
        path = resource.canonical.replace("{service_id}", "{id}").replace("{run_id}", "{runId}")
        routed.add((path, route.method))
    assert routed == documented
    # The seed's endpoint, as documented there: POST, mode query parameter, cookie auth.
    sync = served["paths"]["/api/services/{id}/sync"]["post"]
    mode = next(p for p in sync["parameters"] if p["name"] == "mode")
    assert mode["schema"]["default"] == "incremental"
    assert set(sync["responses"]) >= {"200", "202", "400", "401", "403", "404", "409", "429",
                                      "500", "503"}
    assert served["components"]["securitySchemes"]["adminSession"]["name"] == (
        "authjs.session-token")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process's JSON log lines (with the project's redaction), as the API writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactingFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_logs_are_json_with_the_request_id(api: Api, json_log: io.StringIO) -> None:
    logs.secrets.add(*api.settings.secret_values())
    reply = await api.call("POST", "/api/services/nope/sync",
                           headers={"X-Request-Id": "req-4f2a"})
    assert reply.headers["X-Request-Id"] == "req-4f2a"
    refused = "authjs.session-token=a.b.c.d.e"
    await api.call("POST", "/api/services/nope/sync", cookie=refused,
                   headers={"X-Request-Id": "bad id\twith spaces"})
    lines = _lines(json_log)
    [access] = [x for x in lines if x.get("action") == "http.request"
                and x.get("request_id") == "req-4f2a"]
    assert access["status"] == 404
    assert access["route"] == "/api/services/{service_id}/sync"
    assert access["method"] == "POST"
    assert isinstance(access["ms"], float)
    # A request id that is not a plain token is replaced by a generated one.
    ids = {x.get("request_id") for x in lines if x.get("action") == "http.request"}
    assert "bad id\twith spaces" not in ids
    assert len(ids) == 2
    refusal = [x for x in lines if x.get("action") == "auth.refused"]
    assert refusal
    assert refusal[0]["request_id"] in ids
    text = json_log.getvalue()
    assert "a.b.c.d.e" not in text
    for secret in api.settings.secret_values():
        assert secret not in text


async def test_a_bug_is_a_500_without_a_stack_trace(api: Api, json_log: io.StringIO) -> None:
    """The one 500 ``internal``: an unexpected exception. Logged in full, answered plainly."""

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail: ya29.a0-not-for-clients")

    # The API's own middlewares around a handler with a bug in it.
    app = web.Application(middlewares=api.app.middlewares)
    app.router.add_get("/boom", broken)
    app[METRICS] = ApiMetrics()
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/boom")
        body = await response.json()
    assert response.status == 500
    assert body == {"ok": False, "error": "internal", "message": "An internal error occurred."}
    [logged] = [x for x in _lines(json_log) if x.get("action") == "api.internal_error"]
    assert "RuntimeError" in str(logged["exception"])
    assert "ya29.a0-not-for-clients" not in json_log.getvalue()
