"""Campaign sending at scale (issue 24 §3): queue size, scaling out, memory.

    python bench/campaign_scale.py queue      # send rate, 1,000,000 leads queued vs 1,000
    python bench/campaign_scale.py scaleout   # 1, 2 and 4 worker processes on PostgreSQL
    python bench/campaign_scale.py rss -n 100000   # one worker's RSS over a long run

Every mode uses an aiosmtpd sink in its own process on 127.0.0.1 that records each message's
Message-ID and arrival time (so rates are measured where the messages land, and a (lead, step)
sent twice shows up as a repeated Message-ID).

- ``queue``: one campaign, 20 mailboxes, in a fresh state store per backend holding either
  1,000 or 1,000,000 due leads (imported with ``leads import``'s code, untimed); the in-process
  worker (``Worker(...).run()``, no IMAP) sends ``--sends`` messages (default 1,000) each round;
  rounds alternate small and big queue, the small store re-created each round. The rate with
  1,000,000 queued must be within 10% of the rate with 1,000 (same sink, same run). The due-lead
  query plans (EXPLAIN) on the big store are printed.
- ``scaleout``: PostgreSQL; the sink holds each reply to the end of DATA 20-50 ms (uniform: a
  remote MTA is not on loopback); N = 1, 2, 4 ``penguinctl worker run --once`` processes
  started together on a fresh store of ``-n`` leads; the rate is taken at the sink between its
  10th and 90th percentile arrivals (start-up and tail excluded). Goals: 2 workers >= 1.7x one,
  4 workers >= 3x; no Message-ID twice.
- ``rss``: one worker process (``--batch 20``, default in-flight) sends ``-n`` messages (PostgreSQL
  by default); its RSS (``/proc/PID/status`` VmRSS) is sampled every second and reported at
  each tenth of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from campaign_send import SENDER, STEP, drop_schema, free_port, log, pg_schema  # noqa: E402

PG = os.environ.get("PENGUINCTL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MAILBOXES = 20
PER_MAILBOX_DAILY = 10_000  # the campaign spec's ceiling
SINK = r"""
import asyncio, json, random, re, sys, threading, time
from aiosmtpd.controller import Controller
MID = re.compile(rb"^Message-ID:\s*(\S+)", re.I | re.M)
lo, hi = float(sys.argv[2]), float(sys.argv[3])
arrivals, ids = [], []
class H:
    async def handle_DATA(self, server, session, envelope):
        if hi > 0:
            await asyncio.sleep(random.uniform(lo, hi))
        m = MID.search(envelope.content[:4000])
        ids.append(m.group(1).decode() if m else "")
        arrivals.append(time.monotonic())
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]), server_hostname="localhost")
c.start()
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "stats":
        dups = len(ids) - len(set(ids))
        print(json.dumps({"count": len(ids), "arrivals": arrivals, "dups": dups}), flush=True)
    elif cmd == "count":
        print(len(ids), flush=True)
    elif cmd == "reset":
        arrivals.clear(); ids.clear(); print("ok", flush=True)
c.stop()
"""


class Sink:
    def __init__(self, delay: tuple[float, float] = (0.0, 0.0)) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SINK, str(self.port), str(delay[0]), str(delay[1])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def ask(self, cmd: str) -> str:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def count(self) -> int:
        return int(self.ask("count"))

    def stats(self) -> dict:
        return json.loads(self.ask("stats"))

    def reset(self) -> None:
        self.ask("reset")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


# ----------------------------------------------------------------------------- state
def make_state(url: str, port: int, leads: int, workdir: Path, mailboxes: int = MAILBOXES) -> None:
    """One tenant, ``mailboxes`` mailboxes on one server (the sink), one campaign of one step
    open around the clock, ``leads`` due leads (imported by ``leads import``'s code). A mailbox
    sends at most ``PER_MAILBOX_DAILY`` a day (the spec's ceiling): a run of more sends than
    ``mailboxes`` times that needs more mailboxes (``mode_rss`` asks for them)."""
    import sqlalchemy as sa

    from penguinctl.campaigns.leads import import_leads
    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.spec import CampaignSpec, spec_hash
    from penguinctl.resources import ResourceKey
    from penguinctl.state.db import make_engine, migrate, session_scope
    from penguinctl.state.repo import upsert_resource

    engine = make_engine(url)
    migrate(engine)
    senders = [SENDER.replace("bench@", f"s{i}@") for i in range(mailboxes)]
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
        for address in senders:
            upsert_resource(
                s,
                key=ResourceKey("mailbox", "bench", address),
                provider="state",
                data={
                    "domain": "bench-mail.example",
                    "display_name": "Bench",
                    "daily_limit": 10_000_000,
                    "password": None,
                },
            )
    spec = CampaignSpec.model_validate(
        {
            "senders": senders,
            "unsubscribe": {"url": "https://t.bench-mail.example/u/{token}"},
            "steps": [STEP],
            "schedule": {
                "timezone": "UTC",
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "hours": "00:00-24:00",
            },
            "limits": {"per_mailbox_daily": PER_MAILBOX_DAILY, "min_gap": "0s"},
        }
    ).model_dump(mode="json")
    csv_file = workdir / f"leads-{leads}.csv"
    if not csv_file.exists():
        with csv_file.open("w") as f:
            f.write("email,first_name,company\n")
            for i in range(leads):
                f.write(f"lead{i}@d{i % 5000}.dest.example,Lead{i},Company {i % 977}\n")
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        campaign = Campaign(
            tenant="bench",
            name="bench",
            spec=spec,
            spec_hash=spec_hash(spec),
            created_at=now,
            updated_at=now,
        )
        s.add(campaign)
        s.flush()
        result = import_leads(s, campaign, csv_file)
        assert result.created == leads, result.as_dict()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("ANALYZE leads"))
    engine.dispose()


def secrets_backend(workdir: Path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    return KeystoreBackend(workdir / "keystore", key_file=workdir / "master.key")


def send_in_process(url: str, workdir: Path, sends: int) -> float:
    from penguinctl.campaigns.worker import Worker, WorkerOptions
    from penguinctl.state.db import make_engine

    engine = make_engine(url)
    worker = Worker(
        engine,
        secrets=secrets_backend(workdir),
        options=WorkerOptions(once=True, inbound=False, max_sends=sends),
    )
    t0 = time.perf_counter()
    summary = worker.run()
    wall = time.perf_counter() - t0
    engine.dispose()
    if summary.counts["sent"] != sends:
        raise SystemExit(f"worker sent {summary.counts['sent']} of {sends}: {summary.to_json()}")
    return wall


def fresh(backend: str, workdir: Path, tag: str) -> tuple[str, object]:
    if backend == "sqlite":
        path = workdir / f"{tag}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}", None
    return pg_schema(PG)


def explain(url: str) -> list[str]:
    """The due-lead queries' plans on a store (scheduler.Scheduler._due_query)."""
    import sqlalchemy as sa

    from penguinctl.campaigns.ledger import LEADS
    from penguinctl.campaigns.scheduler import Scheduler
    from penguinctl.state.db import make_engine

    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    sched = Scheduler.__new__(Scheduler)
    sched.pg = pg

    class Plan:
        id = 1

    out = []
    now = datetime.now(UTC)
    with engine.connect() as conn:
        for label, when in (
            ("due at once", LEADS.c.next_send_at.is_(None)),
            ("due by now", LEADS.c.next_send_at <= now),
        ):
            stmt = sched._due_query(Plan, when, 20, [])
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " if pg else "EXPLAIN QUERY PLAN "
            with conn.begin():
                rows = conn.execute(sa.text(prefix + sql)).all()
            out.append(f"-- {label} ({engine.dialect.name})")
            out.extend(("  " + str(r[-1])) for r in rows)
    engine.dispose()
    return out


# ----------------------------------------------------------------------------- modes
def mode_queue(args) -> None:
    sink = Sink()
    results: dict[tuple[str, int], list[float]] = {}
    plans: list[str] = []
    try:
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
                work = Path(tmp)
                big_url, big_handle = fresh(backend, work, "big")
                log(f"{backend}: importing {args.big:,} leads")
                make_state(big_url, sink.port, args.big, work)
                plans += explain(big_url)
                for r in range(args.rounds):
                    order = [args.small, args.big] if r % 2 == 0 else [args.big, args.small]
                    for size in order:
                        if size == args.big:
                            url = big_url
                        else:
                            url, handle = fresh(backend, work, f"small{r}")
                            make_state(url, sink.port, args.small, work)
                        wall = send_in_process(url, work, args.sends)
                        rate = args.sends / wall
                        results.setdefault((backend, size), []).append(rate)
                        log(f"{backend} queue {size:,}: {rate:.0f} msg/s")
                        if size != args.big and backend != "sqlite":
                            drop_schema(handle)
                if big_handle is not None:
                    drop_schema(big_handle)
    finally:
        sink.close()
    print("| backend | leads queued | send rate (msg/s, median) | vs 1,000 queued | goal |")
    print("|---|---:|---:|---:|---|")
    for backend in args.backends.split(","):
        small = statistics.median(results[(backend, args.small)])
        big = statistics.median(results[(backend, args.big)])
        print(f"| {backend} | {args.small:,} | {small:.0f} | anchor | |")
        verdict = "PASS" if big >= 0.9 * small else "FAIL"
        print(f"| {backend} | {args.big:,} | {big:.0f} | {big / small:.2f}x | >= 0.90x {verdict} |")
    print("\n```")
    print("\n".join(plans))
    print("```")


def _worker_cmd(extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "penguinctl",
        "worker",
        "run",
        "--once",
        "--no-inbound",
        "-o",
        "json",
        *extra,
    ]


def _cpu() -> tuple[int, int]:
    """(all jiffies, idle + iowait jiffies) of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def mode_scaleout(args) -> None:
    sink = Sink((0.020, 0.050))
    rows = []
    try:
        for r in range(args.rounds):
            counts = [1, 2, 4] if r % 2 == 0 else [4, 2, 1]
            for n in counts:
                with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
                    work = Path(tmp)
                    url, handle = pg_schema(PG)
                    make_state(url, sink.port, args.n, work)
                    sink.reset()
                    env = {**os.environ, "PENGUINCTL_STATE": url, "PENGUINCTL_HOME": str(work)}
                    extra = ["--in-flight", str(args.in_flight)] if args.in_flight else []
                    cpu0 = _cpu()
                    procs = [
                        subprocess.Popen(
                            _worker_cmd(extra),
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True,
                        )
                        for _ in range(n)
                    ]
                    for p in procs:
                        _, err = p.communicate(timeout=3600)
                        if p.returncode != 0:
                            raise SystemExit(f"worker failed: {err[-2000:]}")
                    stats = sink.stats()
                    cpu1 = _cpu()
                    drop_schema(handle)
                busy = 1 - (cpu1[1] - cpu0[1]) / max(1, cpu1[0] - cpu0[0])
                arrivals = sorted(stats["arrivals"])
                assert stats["count"] == args.n, stats["count"]
                lo, hi = arrivals[len(arrivals) // 10], arrivals[len(arrivals) * 9 // 10]
                rate = (len(arrivals) * 8 // 10) / (hi - lo)
                rows.append({"workers": n, "rate": rate, "dups": stats["dups"], "busy": busy})
                log(
                    f"{n} worker(s): {rate:.0f} msg/s, duplicates {stats['dups']}, "
                    f"machine CPU {busy:.0%} busy, load {os.getloadavg()[0]:.1f}"
                )
    finally:
        sink.close()
    by = {n: statistics.median(r["rate"] for r in rows if r["workers"] == n) for n in (1, 2, 4)}
    dups = sum(r["dups"] for r in rows)
    flight = args.in_flight or "4 (default)"
    print(
        f"| workers (PostgreSQL, sink 20-50 ms, in flight {flight}) | rate (msg/s, median) "
        "| vs 1 worker | goal |"
    )
    print("|---|---:|---:|---|")
    print(f"| 1 | {by[1]:.0f} | anchor | |")
    for n, goal in ((2, 1.7), (4, 3.0)):
        ratio = by[n] / by[1]
        verdict = "PASS" if ratio >= goal else "FAIL"
        print(f"| {n} | {by[n]:.0f} | {ratio:.2f}x | >= {goal}x {verdict} |")
    print(f"\n(lead, step) sent twice: {dups} ({'PASS' if dups == 0 else 'FAIL'})")
    busy = {n: statistics.median(r["busy"] for r in rows if r["workers"] == n) for n in (1, 2, 4)}
    print(
        "machine CPU busy during the runs (median): "
        + ", ".join(f"{n} worker(s) {b:.0%}" for n, b in busy.items())
    )


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def mode_rss(args) -> None:
    sink = Sink()
    samples: list[tuple[int, int]] = []  # (sent so far, RSS kB)
    try:
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            work = Path(tmp)
            url, handle = fresh(args.backend, work, "rss")
            log(f"importing {args.n:,} leads")
            mailboxes = max(MAILBOXES, -(-args.n // PER_MAILBOX_DAILY))
            make_state(url, sink.port, args.n, work, mailboxes)
            env = {**os.environ, "PENGUINCTL_STATE": url, "PENGUINCTL_HOME": str(work)}
            proc = subprocess.Popen(
                _worker_cmd([]),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            t0 = time.monotonic()
            while proc.poll() is None:
                rss = _rss_kb(proc.pid)
                if rss:
                    samples.append((sink.count(), rss))
                time.sleep(1.0)
            wall = time.monotonic() - t0
            if proc.returncode != 0:
                raise SystemExit(proc.stderr.read()[-2000:])
            if handle is not None:
                drop_schema(handle)
            sent = sink.count()
    finally:
        sink.close()
    print(
        f"one worker, {args.backend}, {sent:,} messages in {wall:.0f} s ({sent / wall:.0f} msg/s)"
    )
    if sent != args.n:
        raise SystemExit(f"the worker stopped after {sent:,} of {args.n:,} messages")
    print("\n| sent | worker RSS (MB) |\n|---:|---:|")
    shown = -1
    for done, rss in samples:
        tenth = done * 10 // max(1, args.n)
        if tenth > shown:
            shown = tenth
            print(f"| {done:,} | {rss / 1024:.0f} |")
    print(f"| {samples[-1][0]:,} (last sample) | {samples[-1][1] / 1024:.0f} |")
    steady = [rss for done, rss in samples if done >= args.n // 10]
    if steady:
        growth = (max(steady) - min(steady)) / 1024
        verdict = "PASS" if growth < 20 else "FAIL"
        low, high = min(steady) / 1024, max(steady) / 1024
        print(f"\nRSS from 10% of the run to its end: {low:.0f}-{high:.0f} MB")
        print(f"(growth {growth:.0f} MB; flat: < 20 MB) {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("queue")
    q.add_argument("--backends", default="sqlite,postgresql")
    q.add_argument("--small", type=int, default=1_000)
    q.add_argument("--big", type=int, default=1_000_000)
    q.add_argument("--sends", type=int, default=1_000)
    q.add_argument("--rounds", type=int, default=3)
    s = sub.add_parser("scaleout")
    s.add_argument("-n", type=int, default=3_000)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--in-flight", type=int, default=None, help="per worker (default: its own, 4)")
    r = sub.add_parser("rss")
    r.add_argument("-n", type=int, default=100_000)
    r.add_argument("--backend", default="postgresql")
    args = ap.parse_args()
    {"queue": mode_queue, "scaleout": mode_scaleout, "rss": mode_rss}[args.mode](args)


if __name__ == "__main__":
    main()
