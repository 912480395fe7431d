"""Crash safety, locking and secret hygiene of apply, through real processes (both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import QUICKSTART, agency_spec, run_inprocess, run_subprocess
from sqlalchemy import text

from penguinctl.state.db import make_engine
from penguinctl.state.lock import TenantLock


def _env(tmp_path: Path, state_url: str) -> dict[str, str]:
    return {
        "PENGUINCTL_HOME": str(tmp_path / "home"),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_TODAY": "2026-11-23",
    }


def _popen(env, *args):
    """Start penguinctl in the background; its output goes to files (a full pipe would block)."""
    home = Path(env["PENGUINCTL_HOME"])
    home.parent.mkdir(parents=True, exist_ok=True)
    out = open(home.parent / f"bg-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "penguinctl", *map(str, args)],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.log = out
    return proc


def _output(proc) -> str:
    proc.log.seek(0)
    text_ = proc.log.read()
    proc.log.close()
    return text_


def _wait_for(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _count(home: Path, sub: str, pattern: str) -> int:
    d = home / sub
    return sum(1 for _ in d.rglob(pattern)) if d.exists() else 0


@pytest.mark.parametrize("kill_during", ["dkim", "dns"])
def test_sigkill_mid_apply_then_rerun_converges(tmp_path, state_url, kill_during):
    n = 200
    spec = tmp_path / "agency.yaml"
    spec.write_text(agency_spec(n))
    env = _env(tmp_path, state_url)
    home = tmp_path / "home"

    proc = _popen(env, "apply", "-f", spec, "--yes", "--parallel", "2")
    if kill_during == "dkim":
        probe = lambda: _count(home, "keystore", "*.secret") >= 60  # noqa: E731
    else:
        probe = lambda: _count(home, "zones", "*.zone") >= 60  # noqa: E731
    try:
        _wait_for(lambda: probe() or proc.poll() is not None, what=f"{kill_during} progress")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _output(proc)
    assert proc.returncode == -signal.SIGKILL, "apply finished before it could be killed"

    rerun = run_subprocess(env, "apply", "-f", spec, "--yes", "-o", "json")
    assert rerun.code == 0, rerun.err
    again = run_subprocess(env, "plan", "-f", spec, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err

    engine = make_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, tenant, name FROM resources")).all()
            by_kind: dict[str, int] = {}
            for kind, _, _ in rows:
                by_kind[kind] = by_kind.get(kind, 0) + 1
            assert len(rows) == len(set(rows))
            assert by_kind["domain"] == n and by_kind["dkim"] == n and by_kind["mailbox"] == n
            # MX, SPF, DKIM, DMARC per domain (the MX host is outside these zones: no A record)
            assert by_kind["dnsrecord"] == 4 * n
            ok_events = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT resource FROM audit_events "
                        "WHERE result = 'ok' AND action = 'create'"
                    )
                )
            }
            for kind, tenant, name in rows:
                assert f"{kind}/{tenant or '-'}/{name}" in ok_events
            runs = conn.execute(text("SELECT status FROM apply_runs ORDER BY id"))
            statuses = [r[0] for r in runs]
            assert statuses[0] == "interrupted" and statuses[-1] == "ok"
    finally:
        engine.dispose()
    # no orphaned key material or zone files
    assert _count(home, "keystore", "*.secret") == n
    assert _count(home, "zones", "*.zone") == n
    assert not list((home / "zones").glob(".*"))
    assert not [p for p in (home / "keystore").rglob(".tmp-*")], "keystore temp files left over"


def _peek(proc) -> str:
    return Path(proc.log.name).read_text()


def test_concurrent_applies_never_both_run(tmp_path, state_url):
    """The test holds tenant agency's lock exactly as an apply does (a TenantLock), so another
    apply always meets it: failing fast it exits 7 naming the holder; with --lock-timeout it
    says it waits, changes nothing while the lock is held, then applies once it is released."""
    spec = tmp_path / "agency.yaml"
    spec.write_text(agency_spec(60))
    env = _env(tmp_path, state_url)
    assert run_subprocess(env, "init").code == 0
    engine = make_engine(state_url)

    def resources() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM resources")).scalar()

    waiting = None
    holder = TenantLock(engine, ["agency"], operation="apply", actor="holder@test")
    try:
        with holder:
            second = run_subprocess(env, "apply", "-f", spec, "--yes")
            assert second.code == 7, second.err
            assert f"lock held by holder@test (pid {os.getpid()} on " in second.err
            assert f"lock id {holder.lock_id}" in second.err
            waiting = _popen(env, "apply", "-f", spec, "--yes", "--lock-timeout", "300")
            _wait_for(
                lambda: (
                    "waiting up to 300s: lock held by holder@test" in _peek(waiting)
                    or waiting.poll() is not None
                ),
                what="the second apply to wait for the lock",
            )
            assert waiting.poll() is None, _peek(waiting)
            assert resources() == 0  # nothing applied while the lock is held
        waiting.wait(timeout=300)
        assert waiting.returncode == 0, _peek(waiting)
        assert resources() > 60
        again = run_subprocess(env, "apply", "-f", spec, "--yes")
        assert again.code == 0 and "No changes" in again.out, again.err
        with engine.connect() as conn:
            dup = conn.execute(
                text(
                    "SELECT resource, count(*) FROM audit_events WHERE action = 'create' "
                    "GROUP BY resource HAVING count(*) > 1"
                )
            ).all()
        assert dup == []
    finally:
        if waiting is not None:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
            waiting.log.close()
        engine.dispose()


def _private_key_fragments(home: Path, master_key: str | None = None) -> list[str]:
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    ks = KeystoreBackend(home / "keystore", key_file=home / "master.key", master_key=master_key)
    fragments = []
    for path in ks.list():  # tenants/<tenant>/domains/<domain>/dkim/<selector> (secret_paths)
        if "/dkim/" not in f"/{path}":
            continue
        pem = ks.get(path)["private_key"].reveal()
        body = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
        fragments.extend(body)
    assert fragments, "no private keys found to scan for"
    return fragments


def _dump_database(state_url: str) -> str:
    engine = make_engine(state_url)
    chunks = []
    try:
        with engine.connect() as conn:
            for table in ("resources", "apply_runs", "audit_events", "locks"):
                for row in conn.execute(text(f"SELECT * FROM {table}")):
                    chunks.append(repr(tuple(row)))
    finally:
        engine.dispose()
    return "\n".join(chunks)


def test_no_private_key_bytes_in_state_logs_or_output(tmp_path, state_url, monkeypatch, capsys):
    env = _env(tmp_path, state_url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    outputs = []
    for args in (
        ("apply", "-f", QUICKSTART, "--yes", "--debug"),
        ("plan", "-f", QUICKSTART, "-o", "json", "--out", tmp_path / "plan.json"),
        ("get", "dkim", "-o", "json"),
        ("describe", "domain", "acme-mail.example", "-o", "yaml"),
        ("dns", "export", "--format", "zonefile"),
        ("state", "audit", "-o", "json"),
        ("state", "history", "-o", "json"),
    ):
        res = run_inprocess(capsys, *args)
        assert res.code == 0, (args, res.err)
        outputs.append(res.out + res.err)
    home = tmp_path / "home"
    fragments = _private_key_fragments(home)

    haystacks = {"cli output": "\n".join(outputs), "database": _dump_database(state_url)}
    haystacks["plan file"] = (tmp_path / "plan.json").read_text()
    for f in home.rglob("*"):
        if f.is_file() and "keystore" not in f.parts and f.name != "master.key":
            haystacks[str(f)] = f.read_bytes().decode("latin-1")
    for name, hay in haystacks.items():
        for frag in fragments:
            assert frag not in hay, f"private key material found in {name}"
