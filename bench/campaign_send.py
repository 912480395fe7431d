"""Campaign send throughput to a local SMTP sink: the worker (ledger in SQLite and in
PostgreSQL) against bare smtplib reusing one connection (product spec section 7: >= 0.7x).

    python bench/campaign_send.py                  # 2,000 messages, 3 rounds, SQLite + PostgreSQL
    python bench/campaign_send.py -n 5000 --rounds 5 --backends sqlite
    python bench/campaign_send.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

The sink is aiosmtpd in its own process (127.0.0.1, a free port, plain SMTP, no AUTH, counts
and discards messages), so client and server do not share a GIL. Each round runs, in an order
that rotates between rounds:

- anchor: ``smtplib.SMTP`` connected once, ``sendmail`` of N messages of the same size and shape
  as the campaign's (composed once, Message-ID and To varied), then QUIT;
- penguinctl: a fresh state store (SQLite file, or a new PostgreSQL schema) holding one tenant,
  one mailbox, one campaign of one step and N leads (untimed setup), then
  ``Worker(...).run()`` with ``once=True`` and no IMAP: for every message the ledger claim
  (committed before SMTP), composing (Jinja2 + MIME), the SMTP transaction on one reused
  connection, and the 'sent' record with the lead's advance. In-process, so interpreter start
  and imports are not counted (``--process`` also times a whole ``penguinctl worker run --once``
  process).

The rate is messages per second of wall time; the table gives medians and the ratio to the
anchor of the same round. Standard output: Markdown; ``--json FILE`` writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SINK = r"""
import asyncio, sys
from aiosmtpd.controller import Controller
class H:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        H.n += 1
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]), server_hostname="localhost")
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"""
SENDER = "bench@bench-mail.example"
STEP = {
    "subject": "{Quick|Short} question, {{ first_name | default('there') }}",
    "body": "Hi {{ first_name | default('there') }},\n\nA few lines about {{ company | "
    "default('your company') }} and why we write.\n\nBest,\n{{ sender_name }}\n",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc, port


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- state setup
def make_state(url: str, port: int, n: int) -> None:
    import sqlalchemy as sa

    from penguinctl.campaigns.models import Campaign, Lead
    from penguinctl.campaigns.spec import CampaignSpec, spec_hash
    from penguinctl.resources import ResourceKey
    from penguinctl.state.db import make_engine, migrate, session_scope
    from penguinctl.state.repo import upsert_resource

    engine = make_engine(url)
    migrate(engine)
    with session_scope(engine) as s:
        mail = {"submission": {"host": "127.0.0.1", "port": port, "security": "none"}}
        upsert_resource(
            s,
            key=ResourceKey("server", "bench", "mx"),
            provider="state",
            data={"provider": "external", "hostname": "mx.bench", "mail": mail},
        )
        upsert_resource(
            s,
            key=ResourceKey("domain", "bench", "bench-mail.example"),
            provider="state",
            data={"server": "mx"},
        )
        upsert_resource(
            s,
            key=ResourceKey("mailbox", "bench", SENDER),
            provider="state",
            data={
                "domain": "bench-mail.example",
                "display_name": "Bench Sender",
                "daily_limit": 10_000_000,
                "password": None,
            },
        )
    spec = CampaignSpec.model_validate(
        {
            "senders": [SENDER],
            "unsubscribe": {"url": "https://t.bench-mail.example/u/{token}"},
            "steps": [STEP],
            "schedule": {
                "timezone": "UTC",
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "hours": "00:00-24:00",
            },
            "limits": {"per_mailbox_daily": 10_000, "min_gap": "0s"},
        }
    ).model_dump(mode="json")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        cid = conn.execute(
            sa.insert(Campaign.__table__)
            .values(
                tenant="bench",
                name="bench",
                status="active",
                spec=spec,
                spec_hash=spec_hash(spec),
                created_at=now,
                updated_at=now,
            )
            .returning(Campaign.__table__.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(Lead.__table__),
            [
                {
                    "campaign_id": cid,
                    "email": f"lead{i}@dest.example",
                    "first_name": f"Lead{i}",
                    "last_name": None,
                    "company": f"Company {i}",
                    "timezone": None,
                    "fields": {},
                    "status": "active",
                    "next_step": 0,
                    "next_send_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
    engine.dispose()


def secrets_backend(workdir: Path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    return KeystoreBackend(workdir / "keystore", key_file=workdir / "master.key")


def run_worker(
    url: str, workdir: Path, n: int, concurrency: int, in_flight: int | None
) -> tuple[float, int]:
    from penguinctl.campaigns.worker import Worker, WorkerOptions
    from penguinctl.state.db import make_engine

    engine = make_engine(url)
    worker = Worker(
        engine,
        secrets=secrets_backend(workdir),
        options=WorkerOptions(
            once=True,
            inbound=False,
            concurrency=concurrency,
            **({} if in_flight is None else {"in_flight": in_flight}),
        ),
    )
    t0 = time.perf_counter()
    summary = worker.run()
    wall = time.perf_counter() - t0
    engine.dispose()
    sent = summary.counts["sent"]
    if sent != n:
        raise SystemExit(f"worker sent {sent} of {n}: {summary.to_json()}")
    return wall, sent


def run_process(url: str, workdir: Path, n: int) -> float:
    env = {**os.environ, "PENGUINCTL_STATE": url, "PENGUINCTL_HOME": str(workdir / "home")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "penguinctl",
            "worker",
            "run",
            "--once",
            "--no-inbound",
            "-o",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0 or json.loads(out.stdout)["sent"] != n:
        raise SystemExit(f"worker process failed: {out.stderr[-1000:]}")
    return wall


def sample_message() -> bytes:
    """One composed campaign message (the anchor sends copies of it)."""
    from penguinctl.campaigns.message import compose
    from penguinctl.campaigns.models import Campaign, Lead
    from penguinctl.campaigns.spec import CampaignSpec

    spec = CampaignSpec.model_validate(
        {
            "senders": [SENDER],
            "unsubscribe": {"url": "https://t.bench-mail.example/u/{token}"},
            "steps": [STEP],
        }
    )
    campaign = Campaign(id=1, tenant="bench", name="bench", spec={}, spec_hash="x")
    lead = Lead(
        id=1, campaign_id=1, email="lead0@dest.example", first_name="Lead0", company="Company 0"
    )
    return compose(
        campaign,
        spec,
        lead,
        0,
        SENDER,
        "Bench Sender",
        unsubscribe_secret=b"k" * 32,
        previous_message_ids=[],
    ).payload


def run_anchor(port: int, n: int) -> float:
    template = sample_message()
    msgs = [
        template.replace(b"lead0@dest.example", f"lead{i}@dest.example".encode()).replace(
            b"Message-ID: <", f"Message-ID: <a{i}.".encode(), 1
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="bench", timeout=60)
    smtp.ehlo()
    for i, msg in enumerate(msgs):
        smtp.sendmail(SENDER, [f"lead{i}@dest.example"], msg)
    smtp.quit()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- PostgreSQL
def pg_schema(base: str) -> tuple[str, object]:
    from sqlalchemy import create_engine, text

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"bench_{secrets.token_hex(5)}"
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    return f"{base}?options=-csearch_path%3D{schema}", (admin, schema)


def drop_schema(handle) -> None:
    from sqlalchemy import text

    admin, schema = handle
    with admin.connect() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="messages per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument(
        "--pg",
        default=os.environ.get(
            "PENGUINCTL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument(
        "--in-flight",
        type=int,
        default=None,
        help="SMTP transactions in progress at once (default: the worker's, 4)",
    )
    ap.add_argument("--process", action="store_true", help="also time whole worker processes")
    ap.add_argument("--json", type=Path, help="write raw results here")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    sink, port = start_sink()
    results: dict[str, list[float]] = {"anchor": []}
    for b in backends:
        results[b] = []
        if args.process:
            results[f"{b} (process)"] = []
    load = loadavg()
    log(f"sink on 127.0.0.1:{port}; n={args.n}; rounds={args.rounds}; load {load}")
    try:
        run_anchor(port, 50)  # warm-up
        for r in range(args.rounds):
            order = ["anchor", *backends]
            order = order[r % len(order) :] + order[: r % len(order)]
            for what in order:
                if what == "anchor":
                    wall = run_anchor(port, args.n)
                    results["anchor"].append(args.n / wall)
                    log(f"round {r + 1} anchor: {args.n / wall:.0f} msg/s")
                    continue
                for mode in ("inproc", "process") if args.process else ("inproc",):
                    with tempfile.TemporaryDirectory(prefix="pgctl-bench-") as tmp:
                        workdir = Path(tmp)
                        handle = None
                        if what == "sqlite":
                            url = f"sqlite:///{workdir / 'state.db'}"
                        else:
                            url, handle = pg_schema(args.pg)
                        try:
                            make_state(url, port, args.n)
                            if mode == "inproc":
                                wall, _ = run_worker(
                                    url, workdir, args.n, args.concurrency, args.in_flight
                                )
                                results[what].append(args.n / wall)
                            else:
                                wall = run_process(url, workdir, args.n)
                                results[f"{what} (process)"].append(args.n / wall)
                        finally:
                            if handle is not None:
                                drop_schema(handle)
                    label = what if mode == "inproc" else f"{what} (process)"
                    log(f"round {r + 1} {label}: {args.n / wall:.0f} msg/s")
    finally:
        sink.stdin.close()
        sink.wait(10)
    anchor = statistics.median(results["anchor"])
    print(
        f"\nCampaign send, {args.n} messages to a local aiosmtpd sink (separate process), "
        f"median of {args.rounds} rounds; load average at start {load}\n"
    )
    print("| sender | median msg/s | min | max | vs bare smtplib |")
    print("|---|---:|---:|---:|---:|")
    for what, rates in results.items():
        if not rates:
            continue
        med = statistics.median(rates)
        label = "bare smtplib, one connection" if what == "anchor" else f"penguinctl worker, {what}"
        print(
            f"| {label} | {med:.0f} | {min(rates):.0f} | {max(rates):.0f} | {med / anchor:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "load": load, "rates": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
