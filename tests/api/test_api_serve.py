"""``delightbridge serve`` as an operator runs it, and the seed's curl example against it.

The server is a real subprocess (``python -m delightbridge.cli.main serve --port N``)
configured only through its environment; the admin cookie comes from
``delightbridge admin-session``; the request is the seed's curl command, literally.
Shutdown on SIGTERM lets a running sync finish first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from delightbridge.core.settings import variable_names
from tests.api.conftest import OPS_EMAIL, SECRET, TOKEN_KEY
from tests.plugins.gmail import GmailSim

SERVICE, ADDRESS = "service-123", "support@delightbridge-help.example"
CURL = shutil.which("curl")
START_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(db_url: str, sim: GmailSim) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    return {
        **clean,
        "DATABASE_URL": db_url,
        "AUTH_SECRET": SECRET,
        "ADMIN_EMAILS": OPS_EMAIL,
        "GOOGLE_CLIENT_ID": sim.sim.client_id,
        "GOOGLE_CLIENT_SECRET": sim.sim.client_secret,
        "GOOGLE_OAUTH_TOKEN_URI": sim.token_uri,
        "GMAIL_API_ENDPOINT": sim.base_url,
        "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(TOKEN_KEY).decode(),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


async def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    lines: asyncio.Queue[dict[str, object] | None]
    log: list[dict[str, object]]
    ops_port: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def log_line(self, action: str) -> dict[str, object]:
        """The next structured log line with ``action`` the server writes."""
        while True:
            line = await asyncio.wait_for(self.lines.get(), timeout=START_TIMEOUT)
            assert line is not None, f"the server exited before logging {action}"
            if line.get("action") == action:
                return line


async def _read_log(stream: asyncio.StreamReader, served: Served) -> None:
    """Every stderr line is one JSON object (LOG_FORMAT=json): keep them, never block."""
    while raw := await stream.readline():
        line = json.loads(raw)
        assert isinstance(line, dict)
        served.log.append(line)
        served.lines.put_nowait(line)
    served.lines.put_nowait(None)


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], cwd: Path) -> AsyncIterator[Served]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--ops-port", "0", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    served = Served(process, port, asyncio.Queue(), [])
    reader = asyncio.create_task(_read_log(process.stderr, served))
    try:
        banner = await asyncio.wait_for(process.stdout.readline(), timeout=START_TIMEOUT)
        assert f"listening on http://127.0.0.1:{port};" in banner.decode(), banner
        served.ops_port = int(banner.decode().rsplit(":", 1)[1])
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader  # surfaces a line that was not JSON


async def _curl(*args: str) -> tuple[int, dict[str, object]]:
    """curl as the seed writes it, plus ``--silent --write-out`` for the status."""
    assert CURL is not None
    process = await asyncio.create_subprocess_exec(
        CURL, *args, "--silent", "--show-error", "--write-out", "\n%{http_code}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    body, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(body)


async def _raw_post(port: int, path: str, cookie: str) -> tuple[int, dict[str, object]]:
    """The same request without curl: raw HTTP/1.1 over a socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n"
                  f"Cookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                  ).encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


async def seed_request(port: int, service_id: str, cookie: str) -> tuple[int, dict[str, object]]:
    """The seed's example: ``curl --request POST --url '…/sync' --cookie 'authjs…'``."""
    url = f"http://127.0.0.1:{port}/api/services/{service_id}/sync"
    if CURL is None:
        return await _raw_post(port, f"/api/services/{service_id}/sync", cookie)
    return await _curl("--request", "POST", "--url", url, "--cookie", cookie)


@pytest.fixture
async def mailbox(db_url: str, gmail_sim: GmailSim) -> str:
    """A seeded mailbox and its connected service in the database."""
    mailbox = gmail_sim.sim.create_mailbox(ADDRESS, name="Help")
    gmail_sim.sim.seed(ADDRESS, messages=8, threads=3, seed=5)
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO gmail_accounts (id, name, email, refresh_token) VALUES ($1, $2, $3, $4)",
            SERVICE, "Help", ADDRESS, mailbox.refresh_token)
    finally:
        await conn.close()
    return ADDRESS


async def test_seed_curl_example_against_serve(db_url: str, gmail_sim: GmailSim, mailbox: str,
                                               tmp_path: Path) -> None:
    env = _env(db_url, gmail_sim)
    cookie = (await _cli(env, tmp_path, "admin-session", "--email", OPS_EMAIL)).strip()
    assert cookie.startswith("authjs.session-token=")
    async with serve(env, tmp_path) as served:
        # First contact: no cursor yet, so the default incremental falls back to full.
        status, body = await seed_request(served.port, SERVICE, cookie)
        assert status == 200, body
        assert body["ok"] is True
        assert body["mode"] == "full"
        assert body["fellBackToFull"] is True
        for key in ("threadsProcessed", "messagesProcessed"):
            count = body[key]
            assert isinstance(count, int)
            assert count > 0
        # New mail arrives; the seed's request again: the seed's example answer's shape.
        thread = next(iter(gmail_sim.sim.snapshot(ADDRESS).threads))
        gmail_sim.sim.deliver(ADDRESS, thread_id=thread, text="Following up")
        gmail_sim.sim.deliver(ADDRESS, subject="Refund", text="Please refund me")
        gmail_sim.sim.deliver(ADDRESS, subject="Login", text="I cannot log in")
        status, body = await seed_request(served.port, SERVICE, cookie)
        assert status == 200, body
        assert {k: body[k] for k in ("ok", "mode", "threadsProcessed", "messagesProcessed")} == {
            "ok": True, "mode": "incremental", "threadsProcessed": 3, "messagesProcessed": 3}
        # Without the cookie, or for a non-admin: refused.
        if CURL is not None:
            status, body = await _curl("--request", "POST", "--url",
                                       f"{served.origin}/api/services/{SERVICE}/sync")
            assert (status, body["error"]) == (401, "unauthenticated")
        # Readiness and metrics on the operations port only.
        async with aiohttp.ClientSession() as session:
            for path in ("/readyz", "/metrics"):
                async with session.get(f"http://127.0.0.1:{served.ops_port}{path}") as r:
                    assert r.status == 200, path
                async with session.get(f"{served.origin}{path}") as r:
                    assert r.status == 404, path
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), timeout=60) == 0
    # Structured logs with request ids; the cookie never logged.
    requests = [x for x in served.log if x.get("action") == "http.request"]
    assert len(requests) == 5  # the ops port's requests are not logged
    assert all(x.get("request_id") for x in requests)
    assert cookie.partition("=")[2] not in json.dumps(served.log)


async def test_sigterm_lets_a_running_sync_finish(db_url: str, gmail_sim: GmailSim,
                                                  mailbox: str, tmp_path: Path) -> None:
    env = _env(db_url, gmail_sim)
    cookie = (await _cli(env, tmp_path, "admin-session", "--email", OPS_EMAIL)).strip()
    holder = await asyncpg.connect(db_url)
    try:
        async with serve(env, tmp_path) as served:
            # The sync will stop at its first write while the test holds `emails`.
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE")
            status, body = await _raw_post(served.port,
                                           f"/api/services/{SERVICE}/sync?mode=full&wait=false",
                                           cookie)
            assert status == 202, body
            run_id = body["runId"]
            served.process.send_signal(signal.SIGTERM)
            drain = await served.log_line("api.drain")
            assert "1 running" in str(drain["message"])
            await transaction.commit()  # the sync goes on and finishes
            assert await asyncio.wait_for(served.process.wait(), timeout=60) == 0
        row = await holder.fetchrow("SELECT status, messages_processed "
                                    "FROM delightbridge_sync.runs WHERE id = $1::uuid", run_id)
        assert row is not None
        assert row["status"] == "succeeded"
        assert row["messages_processed"] > 0
    finally:
        await holder.close()


async def _closed_by_server(port: int, trickle: bytes) -> float:
    """Open a connection, send ``trickle`` one byte at a time (never a whole request
    head), and return how long the server took to close it (EOF on our side)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = loop.time()

    async def dribble() -> None:
        for byte in trickle:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)  # the slow client's pace, not a synchronisation

    sender = asyncio.create_task(dribble())
    try:
        assert await reader.read() == b""  # EOF: closed without an answer
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    return loop.time() - opened


async def test_slow_and_oversized_requests(db_url: str, gmail_sim: GmailSim, mailbox: str,
                                           tmp_path: Path) -> None:
    """Hardening #17 items 4, 9 and 10 against ``delightbridge serve`` itself:

    * five slow connections (a header byte every 0.2 s, or nothing at all) are closed
      after HTTP_IDLE_TIMEOUT_SECONDS instead of being held for aiohttp's hour;
    * an Auth.js session chunked over three cookies (over 10 KB of Cookie header, which
      the web app's Node server accepts) is accepted;
    * a header beyond 32 KiB is answered 431 in the JSON error form, without echoing it,
      and logged at INFO on one line without a traceback.
    """
    env = {**_env(db_url, gmail_sim), "HTTP_IDLE_TIMEOUT_SECONDS": "1"}
    big = (await _cli(env, tmp_path, "admin-session", "--email", OPS_EMAIL,
                      "--name", "N" * 8000)).strip()
    assert big.count("authjs.session-token.") == 3
    assert len(big) > 10_000
    async with serve(env, tmp_path) as served:
        slow = [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200] * 4 + [b""]
        held = await asyncio.wait_for(
            asyncio.gather(*(_closed_by_server(served.port, t) for t in slow)), timeout=30)
        assert all(0.5 < seconds < 10 for seconds in held), held
        # The server still answers afterwards.
        status, body = await _raw_post(served.port, f"/api/services/{SERVICE}/sync", big)
        assert status == 200, body
        assert body["ok"] is True

        oversized = "authjs.session-token=" + "A" * (40 * 1024)
        status, body = await _raw_post(served.port, f"/api/services/{SERVICE}/sync",
                                       oversized)
        assert status == 431
        assert body == {"ok": False, "error": "request_header_too_large",
                        "message": body["message"]}
        assert "AAAA" not in json.dumps(body)
        rejected = await served.log_line("http.rejected")
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), timeout=60) == 0
    assert rejected["level"] == "info"
    assert "exception" not in rejected
    assert not [x for x in served.log if x["level"] in ("error", "critical")], served.log
    assert "AAAA" not in json.dumps(served.log)
