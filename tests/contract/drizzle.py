"""The web app's deploy tool, ``drizzle-kit push``, installed from npm and run for real.

``tests/contract/webapp/`` holds a package pinned to the web app's versions (drizzle-kit
0.31.9, drizzle-orm 0.45.1, and ``pg``, the driver the tool uses), its lockfile, and a
Drizzle schema of the web app's tables written for this project. :func:`install` copies
them into a cache folder keyed by their content and runs ``npm ci`` there once;
:meth:`DrizzleKit.push` runs the tool against a database, without a terminal, the way the
web app's CI deploys.

Node.js and npm are required: without them the contract tests fail with one clear line,
they never skip.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

WEBAPP = Path(__file__).parent / "webapp"
FILES = ("package.json", "package-lock.json", "schema.ts", "drizzle.config.ts")
CACHE = Path(__file__).resolve().parents[2] / ".delightbridge" / "cache"
NO_CHANGES = "No changes detected"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class PushResult:
    returncode: int
    output: str  # stdout and stderr, terminal escapes removed

    @property
    def no_changes(self) -> bool:
        return self.returncode == 0 and NO_CHANGES in self.output


@dataclass(frozen=True)
class DrizzleKit:
    workdir: Path

    async def push(self, database_url: str, *, force: bool = False) -> PushResult:
        """``drizzle-kit push`` against ``database_url``, no terminal attached."""
        args = ["node", "node_modules/drizzle-kit/bin.cjs", "push", "--verbose"]
        if force:
            args.append("--force")
        env = {**os.environ, "DATABASE_URL": database_url, "NO_COLOR": "1"}
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=self.workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
        assert proc.returncode is not None
        return PushResult(proc.returncode, _ANSI.sub("", out.decode(errors="replace")))


def install(cache: Path = CACHE) -> DrizzleKit:
    """The tool installed (once per content of ``webapp/``) in ``cache``."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the web app's contract tests need {' and '.join(missing)} on PATH: install "
            "Node.js 20+ (drizzle-kit, the web app's deploy tool, comes from npm)",
            pytrace=False)
    digest = hashlib.sha256()
    for name in FILES:
        digest.update((WEBAPP / name).read_bytes())
    target = cache / f"webapp-drizzle-{digest.hexdigest()[:16]}"
    if (target / "node_modules" / "drizzle-kit" / "bin.cjs").exists():
        return DrizzleKit(target)
    staging = cache / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        for name in FILES:
            shutil.copy2(WEBAPP / name, staging / name)
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=staging, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"npm ci of the web app's deploy tool failed:\n{done.stdout}{done.stderr}",
                        pytrace=False)
        try:
            staging.rename(target)
        except OSError:
            if not target.exists():  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DrizzleKit(target)
