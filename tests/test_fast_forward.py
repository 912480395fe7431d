"""Forty days of the control plane in a few minutes (issue 19): real `serve` processes follow a
clock file moved a day at a time. Twenty domains' DKIM keys rotate through every phase on
time against a real BIND (dkimpy verifies mail signed with the old and the new key at each
phase); a server is backed up nightly and restore-drilled weekly with real restic over a real
sshd; November is invoiced once; a record changed by hand in BIND is reported as drift. The
scheduler leader is SIGKILLed twice meanwhile. Then: no run was lost (every due tick of every
series has a successful run), every interrupted run was run again, and no series ever had two
runs at once."""

from __future__ import annotations

import itertools
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dkim
import dns.query
import dns.rcode
import dns.update
import pytest
import sqlalchemy as sa
from bind import BindServer
from clitools import run_subprocess
from daemons import need_binary
from servekit import Serve, move_clock
from sshd import SshServer, keygen
from test_backup import DOCKER_SHIM, make_mailu_tree

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
DAYS = 40
STEP = timedelta(hours=24)
N = 20
DOMAINS = [f"ff{i:02d}-mail.example" for i in range(N)]
IP = "192.0.2.40"
SCHEDULES = {
    "dkim-rotate": {"scope": "tenant", "schedule": "0 */12 * * *", "timeout": "30m"},
    "backup": {"scope": "tenant", "schedule": "30 2 * * *", "timeout": "30m"},
    "backup-verify": {"scope": "tenant", "schedule": "15 5 * * 0", "timeout": "30m"},
    "drift": {"scope": "tenant", "schedule": "0 12 * * *", "timeout": "30m"},
    "billing-run": {"scope": "platform", "schedule": "0 6 1 * *", "timeout": "30m"},
}


def acme_spec(bind: BindServer) -> str:
    head = bind.spec_head(ip=IP, hostname=f"mail.{DOMAINS[0]}", ttl=60)
    docs = [
        head.replace(
            "metadata: {name: acme}\n", "metadata: {name: acme}\nspec: {plan: business}\n", 1
        )
    ]
    for d in DOMAINS:
        docs.append(
            f"apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {{name: {d}, tenant: acme}}\n"
            "spec:\n  server: mx1\n  dns: bind\n"
            f"  dmarc: {{policy: none, rua: dmarc@{d}}}\n"
            "  dkim: {rotate_every: 20d, propagation: 48h, retire_after: 7d, remove_after: 7d}\n"
        )
    return "---\n".join(docs)


def ops_spec(srv: SshServer, repos: Path) -> str:
    return (
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: ops}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: ops-mx, tenant: ops}\n"
        f"spec:\n  provider: static\n  static: {{address: {srv.address}, ssh_user: root, "
        f"ssh_port: {srv.port}}}\n  hostname: mx.ops-mail.example\n  backup: nightly\n---\n"
        "apiVersion: penguinctl/v1\nkind: BackupPolicy\nmetadata: {name: nightly, tenant: ops}\n"
        f"spec:\n  schedule: '30 2 * * *'\n  repository: {repos / '{server}'}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Schedule\nmetadata: {name: ops-jobs, tenant: ops}\n"
        "spec: {jobs: {drift: {enabled: false}, dkim-rotate: {enabled: false}}}\n"
    )


def signed_by(secrets, domain: str, selector: str) -> bytes:
    message = (
        f"From: John <john@{domain}>\r\nTo: lead@example.org\r\nSubject: hello\r\n"
        f"Message-ID: <{selector}@{domain}>\r\n\r\nA short note.\r\n"
    ).encode()
    private = secrets.get(f"tenants/acme/domains/{domain}/dkim/{selector}")["private_key"].reveal()
    header = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        private.encode(),
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return header + message


def verifies(bind: BindServer, signed: bytes) -> bool:
    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        for rrset in bind.query(name, "TXT").answer:
            for rr in rrset:
                return b"".join(rr.strings)
        return None

    return bool(dkim.verify(signed, dnsfunc=txt))


def phases(engine) -> dict[str, dict[str, str]]:
    from penguinctl.rotation import load

    return {dk.domain: {k.selector: k.phase for k in dk.keys} for dk in load(engine, DOMAINS)}


def settled(engine, now: datetime) -> bool:
    from penguinctl.control.tables import JobRun, JobSeries

    s, r = JobSeries.__table__, JobRun.__table__
    with engine.connect() as conn:
        due = conn.execute(
            sa.select(sa.func.count()).where(s.c.active.is_(True), s.c.next_run_at <= now)
        ).scalar()
        running = conn.execute(sa.select(sa.func.count()).where(r.c.status == "running")).scalar()
        series = conn.execute(sa.select(sa.func.count()).select_from(s)).scalar()
    return series > 0 and due == 0 and running == 0


def expected_ticks(schedule: str, start: datetime, end: datetime) -> set[datetime]:
    """The tick each step must have run: at every move of the clock, a series due since the
    previous move runs once, for its latest tick (missed ticks collapse, none is lost)."""
    from penguinctl.spec.cron import latest_at

    out, previous, t = set(), start, start + STEP
    while t <= end:
        tick = latest_at(schedule, t)
        if tick > previous:
            out.add(tick)
        previous, t = t, t + STEP
    return out


@pytest.mark.parametrize("state_url", ["sqlite", "postgres"], indirect=True)
def test_forty_days(tmp_path, state_url, monkeypatch) -> None:
    need_binary("restic", "restic")
    clock = tmp_path / "clock"
    move_clock(clock, T0)
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "schedules.json").write_text(
        json.dumps({"apiVersion": "penguinctl/v1", "kind": "Schedules", "jobs": SCHEDULES})
    )
    priv, pub = keygen(tmp_path / "id_ed25519")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "docker").write_text(DOCKER_SHIM)
    (shim / "docker").chmod(0o755)
    make_mailu_tree(tmp_path / "mailu")
    env = {
        "PENGUINCTL_HOME": str(home),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_CLOCK_FILE": str(clock),
        "PENGUINCTL_SCHEDULES": str(tmp_path / "schedules.json"),
        "PENGUINCTL_MAILU_ROOT": str(tmp_path / "mailu"),
    }
    with (
        BindServer(tmp_path / "named", DOMAINS) as bind,
        SshServer(tmp_path / "sshd", "127.0.0.7", authorized_keys=[pub], path_prefix=shim) as srv,
    ):
        env["PENGUINCTL_NAMESERVER"] = f"127.0.0.1:{bind.port}"
        (tmp_path / "tsig.secret").write_text(bind.secret + "\n")
        (tmp_path / "acme.yaml").write_text(acme_spec(bind))
        monkeypatch.chdir(tmp_path)
        res = run_subprocess(env, "apply", "-f", tmp_path / "acme.yaml", "--yes")
        assert res.code == 0, res.err
        engine, secrets = _store(env, srv, priv, tmp_path)
        old = {d: next(iter(p)) for d, p in phases(engine).items()}
        signed_old = {d: signed_by(secrets, d, s) for d, s in old.items()}
        assert all(verifies(bind, signed_old[d]) for d in DOMAINS)

        replicas = 1 if engine.dialect.name == "sqlite" else 2
        procs = [Serve(env).start() for _ in range(replicas)]
        for p in procs:
            p.ready()
        signed_new: dict[str, bytes] = {}
        seen: dict[str, datetime] = {}  # phase reached -> first step it was seen
        kills = {int(DAYS * 0.3), int(DAYS * 0.7)}  # steps at which the leader dies
        try:
            now = T0
            for step in range(1, DAYS + 1):
                now = T0 + step * STEP
                move_clock(clock, now)
                if step == 15:  # day 15: someone edits a DMARC record by hand
                    _hand_edit(bind, DOMAINS[3])
                if step in kills:
                    time.sleep(0.3)  # runs of this step are starting
                    leader = next((p for p in procs if p.role() == "leader"), procs[0])
                    leader.kill()
                    procs.remove(leader)
                    procs.append(Serve(env).start())
                    procs[-1].ready()
                end = time.monotonic() + 180
                while not settled(engine, now) and time.monotonic() < end:
                    time.sleep(0.1)
                assert settled(engine, now), f"step {step} ({now}) did not settle"
                _check_phase(engine, bind, secrets, now, old, signed_old, signed_new, seen)
        finally:
            codes = [p.stop() for p in procs]
        assert codes == [0] * len(procs)

        # DKIM: every phase reached on time (within one step, a day, of when it was due)
        day = timedelta(days=1)
        assert seen["published"] - T0 <= 20 * day + STEP
        assert 22 * day <= seen["active"] - T0 <= 22 * day + STEP
        assert 29 * day <= seen["revoked"] - T0 <= 29 * day + STEP
        assert 36 * day <= seen["removed"] - T0 <= 36 * day + STEP
        _assert_runs(engine, T0, now)
        # drift reported, never applied
        drift = _runs(engine, "drift", "acme")
        hit = [r for r in drift if r.status == "ok" and r.summary.get("drift")]
        assert hit and any(DOMAINS[3] in c["resource"] for c in hit[0].summary["listed"])
        assert "p=reject" in str(bind.query(f"_dmarc.{DOMAINS[3]}", "TXT").answer)
        # billing: November invoiced once
        from penguinctl.billing import tables as bt

        with engine.connect() as conn:
            invs = conn.execute(sa.select(bt.invoices.c.tenant, bt.invoices.c.period)).all()
        assert [tuple(i) for i in invs] == [("acme", "2026-11")]
        engine.dispose()


def _store(env: dict, srv: SshServer, priv: str, tmp: Path):
    """The state store and secrets as the processes see them; ops's server recorded as an
    apply would (its MailU install needs a real MailU host) and its spec recorded."""
    from fakes.state_rows import record_resources, static_server

    from penguinctl.cli.context import AppContext
    from penguinctl.control import specs
    from penguinctl.settings import load_settings
    from penguinctl.spec import load_specs

    full = {**os.environ, **env}
    app = AppContext(settings=load_settings(full), env=full)
    record_resources(
        env["PENGUINCTL_STATE"],
        [
            (
                "server",
                "ops",
                "ops-mx",
                static_server(srv.address, srv.port, "mx.ops-mail.example", backup="nightly"),
            ),
        ],
    )
    (tmp / "ops.yaml").write_text(ops_spec(srv, tmp / "repos"))
    specs.record(app.db, load_specs([tmp / "ops.yaml"]), tenants=["ops"], run_id=None, actor="test")
    secrets = app.secrets()
    secrets.put("tenants/ops/servers/ops-mx/ssh", {"private_key": priv})
    return app.db, secrets


def _hand_edit(bind: BindServer, domain: str) -> None:
    upd = dns.update.UpdateMessage(domain, keyring=bind.keyring())
    upd.replace("_dmarc", 60, "TXT", '"v=DMARC1; p=reject"')
    assert dns.query.tcp(upd, "127.0.0.1", port=bind.port, timeout=5).rcode() == dns.rcode.NOERROR


def _check_phase(engine, bind, secrets, now, old, signed_old, signed_new, seen) -> None:
    """At each step, mail signed with each key verifies exactly when its phase says it must."""
    current = phases(engine)
    for d in DOMAINS:
        keys = current[d]
        new = [s for s in keys if s != old[d]]
        if new and d not in signed_new and keys[new[0]] in ("published", "active"):
            signed_new[d] = signed_by(secrets, d, new[0])
        old_phase = keys.get(old[d], "removed")
        new_phase = keys[new[0]] if new else None
        state = {
            ("active", None): "before",
            ("active", "published"): "published",
            ("retiring", "active"): "active",
            ("revoked", "active"): "revoked",
            ("removed", "active"): "removed",
        }.get((old_phase, new_phase))
        assert state is not None, f"{d}: unexpected phases {keys}"
        seen.setdefault(state, now)
        assert verifies(bind, signed_old[d]) == (state in ("before", "published", "active")), (
            d,
            state,
        )
        if d in signed_new:
            assert verifies(bind, signed_new[d]), (d, state)


def _runs(engine, job: str, tenant: str) -> list:
    from penguinctl.control.tables import JobRun

    t = JobRun.__table__
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t).where(t.c.job == job, t.c.tenant == tenant).order_by(t.c.id)
        ).all()


def _assert_runs(engine, start: datetime, end: datetime) -> None:
    """No run lost, interrupted ones converged, no overlap within a series."""
    from penguinctl.state.columns import aware

    series = {
        ("dkim-rotate", "acme"): SCHEDULES["dkim-rotate"]["schedule"],
        ("drift", "acme"): SCHEDULES["drift"]["schedule"],
        ("backup", "ops"): "30 2 * * *",
        ("backup-verify", "ops"): SCHEDULES["backup-verify"]["schedule"],
        ("billing-run", ""): SCHEDULES["billing-run"]["schedule"],
    }
    interrupted = 0
    for (job, tenant), schedule in series.items():
        runs = _runs(engine, job, tenant)
        ok = {aware(r.scheduled_for) for r in runs if r.status == "ok"}
        want = expected_ticks(schedule, start, end)
        assert want and want <= ok, f"{job}/{tenant}: ticks without a successful run: " + str(
            sorted(want - ok)[:3]
        )
        assert all(r.status in ("ok", "interrupted") for r in runs), [
            (r.id, r.status, r.error) for r in runs if r.status not in ("ok", "interrupted")
        ]
        for r in runs:
            if r.status == "interrupted":
                interrupted += 1
                assert aware(r.scheduled_for) in ok  # converged: its tick ran again
        # one at a time: each run began after the one before it had finished (product clock)
        for a, b in itertools.pairwise(runs):
            assert a.finished_at is not None and aware(b.started_at) >= aware(a.finished_at)
    assert len(want) >= 1 and interrupted >= 0
