"""schemathesis against the served OpenAPI document: no 5xx, no schema mismatch.

The schemathesis CLI runs as a subprocess against the app on a real port (a real
database, the Gmail simulator behind it, an admin's cookie on every request), with
every check it has, in every phase. The document's example id ``service-123`` names
a connected service, so the example and coverage phases reach real syncs, runs and
the connect redirect, not only 404s.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import Api, admin_cookie

SCHEMATHESIS = shutil.which("schemathesis", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed (dev extra)")
async def test_schemathesis_finds_no_server_error_and_no_mismatch(api: Api, tmp_path: Path
                                                                  ) -> None:
    await api.connected_service("service-123", "support@noji.example", messages=4, threads=2)
    assert SCHEMATHESIS is not None
    name, _, token = admin_cookie().partition("=")
    assert name == "authjs.session-token"
    # The admin session as the document's security scheme (so that schemathesis knows
    # the cookie is authentication: it also checks that requests without it are refused).
    config = tmp_path / "schemathesis.toml"
    config.write_text('[auth.openapi.adminSession]\napi_key = "${DBSYNC_ADMIN_SESSION}"\n')
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS, "--config-file", str(config), "run", api.url("/api/openapi.json"),
        "--checks", "all",
        "--max-examples", "25",
        "--seed", "20261123",
        "--workers", "1",
        "--max-redirects", "0",
        "--request-timeout", "30",
        "--output-sanitize", "true",
        "--suppress-health-check", "all",
        "--no-color",
        "--report", "har", "--report-har-path", str(tmp_path / "run.har"),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1",
             "DBSYNC_ADMIN_SESSION": token},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text[-20000:]
    # What it sent: real syncs with the admin session, refusals without it, no 5xx.
    seen: Counter[tuple[str, str, int]] = Counter()
    for entry in json.loads((tmp_path / "run.har").read_text())["log"]["entries"]:
        path = re.sub(r"/api/services/(?!oauth/)[^/]+", "/api/services/{id}",
                      urlsplit(entry["request"]["url"]).path)
        path = re.sub(r"/runs/[^/]+$", "/runs/{id}", path)
        seen[(entry["request"]["method"], path, entry["response"]["status"])] += 1
    assert not [key for key in seen if key[2] >= 500], seen
    for expected in [("POST", "/api/services/{id}/sync", 200),
                     ("POST", "/api/services/{id}/sync", 401),
                     ("POST", "/api/services/{id}/sync", 400),
                     ("POST", "/api/services/{id}/sync", 404),
                     ("GET", "/api/services/{id}/sync/runs/{id}", 200),
                     ("GET", "/api/services/{id}/connect", 302),
                     ("GET", "/api/services/oauth/callback", 302),
                     ("PUT", "/api/services/{id}/sync", 405)]:
        assert seen[expected] > 0, (expected, seen)
