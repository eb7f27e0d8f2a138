"""The standalone simulator: ``python -m gmailsim`` and the ``run``/``configure`` hooks."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from typing import Any

from gmailsim import cli


def _post_form(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def _get(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def test_standalone_server_prints_its_settings_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gmailsim", "--port", "0", "--messages", "6", "--threads", "2",
         "--mailbox", "one@example.com", "--prefix", "/sim"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        refresh = ""
        while "# control API" not in "".join(lines):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            key, _, value = line.strip().partition("=")
            lines[key] = value
        for line in iter(process.stdout.readline, ""):
            if "refresh_token=" in line:
                refresh = line.strip().rpartition("refresh_token=")[2]
                break
        base = lines["GMAIL_API_ENDPOINT"]
        assert base.startswith("http://127.0.0.1:")
        assert base.endswith("/sim")
        token = _post_form(lines["GOOGLE_OAUTH_TOKEN_URI"], {
            "grant_type": "refresh_token", "refresh_token": refresh,
            "client_id": lines["GOOGLE_CLIENT_ID"],
            "client_secret": lines["GOOGLE_CLIENT_SECRET"]})["access_token"]
        profile = _get(base + "/gmail/v1/users/me/profile", token)
        assert profile["emailAddress"] == "one@example.com"
        assert profile["messagesTotal"] == 6
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_run_with_the_project_hooks() -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["--port", "0", "--messages", "3", "--threads", "1"])
    out = io.StringIO()
    stop = asyncio.Event()
    stop.set()  # serve, print, then stop at once
    assert await cli.run(None, args, out=out, stop=stop) == 0
    text = out.getvalue()
    assert text.count("refresh_token=1//") == len(cli.DEFAULT_MAILBOXES)
    assert "GMAIL_API_ENDPOINT=http://127.0.0.1:" in text
    assert "GOOGLE_CLIENT_SECRET=GOCSPX-" in text


async def test_run_takes_the_oauth_client_from_the_settings() -> None:
    from delightbridge.core.settings import Settings

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["--port", "0", "--messages", "0"])
    settings = Settings(google_client_id="demo-client", google_client_secret="demo-secret")
    out = io.StringIO()
    stop = asyncio.Event()
    stop.set()
    assert await cli.run(settings, args, out=out, stop=stop) == 0
    assert "GOOGLE_CLIENT_ID=demo-client\n" in out.getvalue()
    assert "GOOGLE_CLIENT_SECRET=demo-secret\n" in out.getvalue()
