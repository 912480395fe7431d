"""API key lookups under concurrency: requests that find a token's cache entry missing together
wait for one state-store lookup per token (not one each), and a lookup is never shared across
tokens: tenant B's requests, made in the same burst, get B's principal and never A's objects.

The app is the one ``serve`` hosts (``create_app``), over a state store the CLI applied, driven
in process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from apikit import tenant_spec

BURST = 40


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "penguinctl", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = f"sqlite:///{tmp_path / 'state.db'}"
    env = {"PENGUINCTL_HOME": str(tmp_path / "home"), "PENGUINCTL_STATE": state,
           "PENGUINCTL_API_RATE": "100000", "PENGUINCTL_API_BURST": "100000"}  # fmt: skip
    for tenant in ("initech", "globex"):
        (tmp_path / f"{tenant}.yaml").write_text(tenant_spec(tenant))
        _cli(env, "apply", "-f", str(tmp_path / f"{tenant}.yaml"), "--yes")
    tokens = {}
    for t in ("initech", "globex"):
        created = _cli(env, "apikeys", "create", "--tenant", t, "--role", "viewer", "-o", "json")
        tokens[t] = json.loads(created)["token"]
    from penguinctl.identity import cache, dependency
    from penguinctl.state.db import make_engine
    from penguinctl.web.app import create_app
    from penguinctl.web.metrics import Metrics
    from penguinctl.web.state import WebState

    lookups: list[str] = []
    real = dependency._authenticate

    def counted(web: object, token: str):
        lookups.append(token)
        return real(web, token)

    monkeypatch.setattr(dependency, "_authenticate", counted)
    cache._entries.clear()
    db = make_engine(state)
    web = WebState(db=db, secrets=lambda: None, env=env, metrics=Metrics(db))
    yield create_app(web), tokens, lookups
    cache._entries.clear()
    db.dispose()


async def _burst(app, tokens: dict[str, str]) -> list[tuple[str, httpx.Response]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:

        async def one(i: int) -> tuple[str, httpx.Response]:
            me = "initech" if i % 2 == 0 else "globex"
            # every request asks for initech's domain: globex's must not see it
            auth = {"Authorization": f"Bearer {tokens[me]}"}
            answer = await client.get("/api/v1/domains/initech-0.example", headers=auth)
            return me, answer

        return await asyncio.gather(*(one(i) for i in range(BURST)))


def _check(answers: list[tuple[str, httpx.Response]]) -> None:
    for me, answer in answers:
        if me == "initech":
            assert answer.status_code == 200, answer.text
            assert answer.json()["tenant"] == "initech"
        else:
            assert answer.status_code == 404, answer.text
            assert "initech" not in answer.text.replace("initech-0.example", "")


def test_a_burst_of_cache_misses_makes_one_lookup_per_token(world) -> None:
    from penguinctl.identity import cache

    app, tokens, lookups = world
    answers = asyncio.run(_burst(app, tokens))
    _check(answers)
    assert sorted(lookups) == sorted(tokens.values())  # one each, not BURST / 2 each
    # the entries expire (here: forgotten) while clients are busy: again one lookup per token
    cache._entries.clear()
    answers = asyncio.run(_burst(app, tokens))
    _check(answers)
    assert sorted(lookups) == sorted(list(tokens.values()) * 2)


def test_a_revoked_key_fails_every_waiting_request(world, tmp_path: Path) -> None:
    from penguinctl.identity import cache

    app, tokens, lookups = world
    env = {"PENGUINCTL_HOME": str(tmp_path / "home"),
           "PENGUINCTL_STATE": f"sqlite:///{tmp_path / 'state.db'}"}  # fmt: skip
    prefix = tokens["globex"].split("_")[1]
    _cli(env, "apikeys", "revoke", prefix)
    cache._entries.clear()
    answers = asyncio.run(_burst(app, tokens))
    for me, answer in answers:
        assert answer.status_code == (200 if me == "initech" else 401), answer.text
    assert sorted(lookups) == sorted(tokens.values())
