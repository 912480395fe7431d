"""Leak audit: not one secret value may appear in the state store, the logs, plan files, the
audit log or any command's output.

One test drives the secret-handling flows end to end through the real CLI, with secrets whose
values it knows: apply (DKIM keys, a mailbox password from the environment, a TSIG key from the
secrets backend, against a real BIND), a failed apply with a wrong TSIG secret, a failed write
to the secrets backend, DKIM rotation steps (`secrets rotate`, `dkim rotate`), `secrets get`
without --reveal, `get`/`describe`/`plan -o json`/`dns records`, the audit log and run history.
Then it scans: every column of every table of the state database (SQLite and PostgreSQL) and,
for SQLite, the raw database file; every captured log record (DEBUG and up, any logger); every
file penguinctl wrote under its home (zones, logs, plan files) except the encrypted keystore;
and every command's stdout and stderr.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from bind import BindServer
from clitools import QUICKSTART, run_inprocess
from secrets_backends import TEST_TOKEN, secrets_backend  # noqa: F401

ZONE = "leak-check.example"
SARA_PASSWORD = "Sara-Smtp-Pa55word!x9"
CF_TOKEN = "cf-token-0123456789abcdef"
MAILBOX_PASSWORD = "Tr0ub4dor&3-horse"
NEVER_STORED = "never-stored-Secret-42"
WRONG_TSIG = base64.b64encode(b"wrong-tsig-secret-for-leak-test!").decode()


def _spec(bind: BindServer) -> str:
    """The quickstart plus a DnsProvider on a real BIND (TSIG secret from the backend, a
    keystore: reference) and a domain on it."""
    return QUICKSTART.read_text() + (
        "---\napiVersion: penguinctl/v1\nkind: DnsProvider\n"
        "metadata: {name: bind, tenant: acme}\n"
        f"spec:\n  type: rfc2136\n  server: 127.0.0.1\n  port: {bind.port}\n  ttl: 60\n"
        f"  tsig: {{name: {bind.key_name}, algorithm: {bind.algorithm}, "
        'secret: "keystore:providers/bind-tsig"}\n'
        "---\napiVersion: penguinctl/v1\nkind: Domain\n"
        f"metadata: {{name: {ZONE}, tenant: acme}}\n"
        "spec:\n  server: mx1\n  dns: bind\n"
        f"  dmarc: {{policy: none, rua: dmarc@{ZONE}}}\n"
        "  mailboxes:\n    - {local: ops, display_name: Ops, daily_limit: 10}\n"
    )


@pytest.fixture
def bind(tmp_path):
    with BindServer(tmp_path / "named", [ZONE]) as server:
        yield server


def _pieces(pem: str) -> list[str]:
    """A PEM private key and pieces of its base64 body (a partial leak counts too)."""
    body = "".join(pem.strip().splitlines()[1:-1])
    return [pem.strip(), *(body[i : i + 40] for i in range(0, len(body) - 40, 300))]


def _db_text(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(
                table.name
                + json.dumps([list(row) for row in conn.execute(sa.select(table))], default=str)
                for table in meta.sorted_tables
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("state_url", "secrets_backend"),
    [("sqlite", "keystore"), ("postgres", "vault")],  # each store and each backend, once
    indirect=True,
)
def test_no_secret_value_leaks_anywhere(
    tmp_path,
    monkeypatch,
    capsys,
    caplog,
    state_url,
    secrets_backend,  # noqa: F811
    bind,
):
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.setenv("SARA_SMTP_PASSWORD", SARA_PASSWORD)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    outputs: list[str] = []

    def cli(*args, stdin: str = "", ok: bool = True, scan: bool = True):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        res = run_inprocess(capsys, *args)
        if ok:
            assert res.code == 0, (args, res.out, res.err)
        if scan:
            outputs.append(f"$ {args}\n{res.out}\n{res.err}")
        return res

    cli("init")
    # a wrong TSIG key first: the BIND part of the apply fails (BIND refuses the signature)
    cli("secrets", "put", "providers/bind-tsig", stdin=f"value={WRONG_TSIG}\n")
    failed = cli("apply", "-f", spec, "--yes", ok=False)
    assert failed.code in (5, 6), failed.err
    assert ZONE in failed.err and len(failed.err.strip().splitlines()) <= 3
    # the right one: everything converges
    cli("secrets", "put", "providers/bind-tsig", stdin=f"value={bind.secret}\n")
    cli("apply", "-f", spec, "--yes", "-o", "json")
    cli("apply", "-f", spec, "--yes")
    cli("secrets", "put", "providers/cloudflare", stdin=f"api_token={CF_TOKEN}\n")
    box = f"tenants/acme/mailboxes/sara@{ZONE}"
    cli("secrets", "put", box, stdin=f"password={MAILBOX_PASSWORD}\n")
    # a write that fails, with a value in hand
    if secrets_backend.vault is not None:
        secrets_backend.vault.sealed = True
        res = cli("secrets", "put", "providers/x", stdin=f"k={NEVER_STORED}\n", ok=False)
        secrets_backend.vault.sealed = False
    else:
        res = cli("secrets", "put", "bad path!", stdin=f"k={NEVER_STORED}\n", ok=False)
    assert res.code in (2, 5), res.err
    bad = cli("secrets", "put", "providers/y", stdin=f"{NEVER_STORED}\n", ok=False)
    assert bad.code == 2
    # rotation: a new DKIM key through the rotation contract, and through `dkim rotate`
    cli("secrets", "rotate", "acme-mail.example", "--kind", "dkim", "-o", "json")
    cli("dkim", "rotate", ZONE, "--nameserver", f"127.0.0.1:{bind.port}", "-o", "json")
    cli("secrets", "rotate", "--kind", "dkim")
    # reading everything a person or a script would
    planfile = tmp_path / "plan.json"
    cli("plan", "-f", spec, "-o", "json", "--out", planfile)
    cli("plan", "-f", spec)
    for args in (
        ("get", "dkim", "-o", "json"),
        ("get", "domains", "-o", "yaml"),
        ("get", "mailboxes", "-o", "json"),
        ("describe", "domain", "acme-mail.example", "-o", "json"),
        ("describe", "domain", ZONE, "-o", "json"),
        ("dns", "records", ZONE, "-o", "json"),
        ("dkim", "status", "-o", "json"),
        ("secrets", "list"),
        ("secrets", "get", "tenants/acme/domains/acme-mail.example/dkim/pm202611"),
        ("secrets", "get", "providers/bind-tsig", "-o", "json"),
        ("secrets", "get", f"tenants/acme/mailboxes/sara@{ZONE}", "-o", "yaml"),
        ("state", "audit", "-o", "json", "--limit", "5000"),
        ("state", "history", "-o", "json"),
    ):
        cli(*args)
    # --reveal prints the value (its output is not scanned) but is audited without it
    shown = cli("secrets", "get", "providers/cloudflare", "--reveal", "-o", "json", scan=False)
    assert shown.json()["fields"]["api_token"] == CF_TOKEN

    # -- the secret values --------------------------------------------------------------------
    backend = secrets_backend.backend()
    keys = backend.list("tenants/acme/domains/")
    assert len(keys) >= 6  # 4 domains' keys, plus the rotated ones
    known = [SARA_PASSWORD, CF_TOKEN, MAILBOX_PASSWORD, NEVER_STORED, WRONG_TSIG, bind.secret]
    for path in keys:
        known += _pieces(backend.get(path)["private_key"].reveal())
    if secrets_backend.vault is not None:
        known.append(TEST_TOKEN)
    else:
        known.append((home / "master.key").read_text().strip())

    # -- where they must not be -----------------------------------------------------------------
    db = _db_text(state_url)
    assert "secret.write" in db and "secret.rotate" in db and "acme-mail.example" in db
    assert "secret.reveal" in db  # the reveal was audited ...
    haystacks = {"state database": db, "command output": "\n".join(outputs)}
    haystacks["log records"] = caplog.text + "\n".join(
        json.dumps([r.getMessage(), r.args], default=str) for r in caplog.records
    )
    files = []
    for path in sorted(home.rglob("*")):
        rel = path.relative_to(home).parts
        if not path.is_file() or rel[0] == "keystore" or path.name == "master.key":
            continue
        files.append(path)
    files.append(planfile)
    if state_url.startswith("sqlite"):  # the raw file: free pages and the WAL included
        db_file = Path(state_url.removeprefix("sqlite:///"))
        files += [p for p in db_file.parent.glob(db_file.name + "*") if p.is_file()]
    assert any(p.suffix == ".zone" for p in files)
    for path in files:
        haystacks[str(path)] = path.read_bytes().decode("latin-1")
    assert planfile.stat().st_size > 0
    assert "tenants/acme/domains/acme-mail.example/dkim/pm202611" in haystacks["command output"]
    for where, text in haystacks.items():
        for secret in known:
            assert secret not in text, f"a secret value leaked into {where}"
            assert json.dumps(secret)[1:-1] not in text, f"a secret value leaked into {where}"


def test_scan_would_find_a_leak(tmp_path):
    """The scan is not vacuous: a value written to the database is found by it."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (doc JSON)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:d)"), {"d": json.dumps({"k": CF_TOKEN})})
    engine.dispose()
    assert CF_TOKEN in _db_text(url)
    assert os.path.getsize(tmp_path / "x.db") > 0
