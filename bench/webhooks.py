"""Webhook delivery to a local receiver: throughput of one delivering process against a bare
httpx client posting the same bodies in one loop (the floor; goal >= 0.5x its rate), and the
event-to-delivery latency (p50, p99) while events are emitted at 100 per second.

    python bench/webhooks.py                         # 2,000 events, 5 rounds, SQLite
    python bench/webhooks.py -n 5000 --rounds 5 --backends sqlite,postgres
    python bench/webhooks.py --latency-seconds 30    # the 100 events/s run, longer

The receiver is an asyncio HTTP/1.1 server in its own process (127.0.0.1, a free port,
keep-alive, answers 200 "ok", notes the arrival time of every webhook-id), so sender and
receiver do not share a GIL. Each round, in an order that alternates:

- floor: ``httpx.Client()`` POSTing the N bodies (the same JSON envelopes penguinctl sends,
  with a content-type header) one after the other on its connection pool;
- penguinctl: a fresh state store with one platform endpoint and N events already in the outbox
  (untimed), then ``EventLoop.run_once()`` repeated until every delivery succeeded: the relay
  fan-out, the claims, signing (standardwebhooks), the guarded transport and the recorded
  attempts, 8 requests in flight (the default).

Latency: ``penguinctl events deliver`` runs as its own process (what serve runs, default idle
wait); this process emits one event every 10 ms, each in its own transaction, for
``--latency-seconds``; latency is the receiver's arrival time minus the event's ``occurred_at``.
Standard output: Markdown; ``--json FILE`` writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RECEIVER = r"""
import asyncio, json, sys, time
arrivals = {}

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            length, wid = 0, None
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"webhook-id":
                    wid = v.strip().decode()
            if len(rest) < length:
                return
            self.buf = rest[length:]
            if wid is not None:
                arrivals.setdefault(wid, time.time())
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    with open(sys.argv[1], "w") as fh:
        json.dump(arrivals, fh)

asyncio.run(main())
"""


class Receiver:
    def __init__(self, workdir: Path) -> None:
        self.out = workdir / f"arrivals-{secrets.token_hex(4)}.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(self.out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> dict[str, float]:
        self.proc.stdin.close()
        self.proc.wait(30)
        return json.loads(self.out.read_text())


def _state(backend: str, workdir: Path, pg: str) -> tuple[str, object]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'state-{secrets.token_hex(4)}.db'}", None
    import sqlalchemy as sa

    schema = f"bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return f"{pg}?options=-csearch_path%3D{schema}", drop


def _setup(url: str, workdir: Path, receiver_url: str, n: int):
    from penguinctl.events.outbox import emit_many, row
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.state.db import make_engine, migrate
    from penguinctl.webhooks import endpoints

    engine = make_engine(url)
    migrate(engine)
    home = workdir / f"home-{secrets.token_hex(4)}"  # a PENGUINCTL_HOME: keystore + key file
    store = KeystoreBackend(home / "keystore", key_file=home / "master.key")
    endpoints.add(engine, store, receiver_url, allow_private=True, actor="bench")
    with engine.begin() as conn:
        for i in range(0, n, 1000):
            emit_many(
                conn,
                [
                    row(
                        "campaign.completed",
                        tenant="acme",
                        subject=f"campaign/c{j}",
                        payload={"campaign": f"c{j}"},
                    )
                    for j in range(i, min(n, i + 1000))
                ],
            )
    return engine, store, home


def floor(receiver: Receiver, n: int) -> float:
    import httpx

    body = json.dumps(
        {"id": "evt_" + "0" * 24, "type": "campaign.completed", "timestamp":
         "2026-11-24T10:00:00+00:00", "tenant": "acme", "subject": "campaign/c1",
         "data": {"campaign": "c1"}}, separators=(",", ":"), sort_keys=True,
    ).encode()  # fmt: skip
    with httpx.Client() as client:
        start = time.perf_counter()
        for i in range(n):
            client.post(
                receiver.url,
                content=body,
                headers={"content-type": "application/json", "webhook-id": f"floor-{i}"},
            ).raise_for_status()
        return n / (time.perf_counter() - start)


def penguinctl(receiver: Receiver, n: int, backend: str, workdir: Path, pg: str) -> float:
    import sqlalchemy as sa

    from penguinctl.events.loop import EventLoop

    url, drop = _state(backend, workdir, pg)
    engine, store, _ = _setup(url, workdir, receiver.url, n)
    loop = EventLoop(engine, store, env={}, owner="bench")
    try:
        start = time.perf_counter()
        while True:
            done = loop.run_once()
            if not done["relayed"] and not done["webhooks"]["attempted"]:
                break
        elapsed = time.perf_counter() - start
        with engine.connect() as conn:
            ok = conn.execute(
                sa.text("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")
            ).scalar()
        if ok != n:
            raise SystemExit(f"only {ok} of {n} deliveries succeeded")
        return n / elapsed
    finally:
        loop.close()
        engine.dispose()
        if drop:
            drop()


def latency(workdir: Path, seconds: float, rate: int, backend: str, pg: str) -> dict:
    import sqlalchemy as sa

    from penguinctl.events.outbox import emit

    receiver = Receiver(workdir)
    url, drop = _state(backend, workdir, pg)
    engine, _, home = _setup(url, workdir, receiver.url, 0)
    env = {**os.environ, "PENGUINCTL_STATE": url, "PENGUINCTL_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "penguinctl", "events", "deliver"],
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)  # started and idle
        start = time.perf_counter()
        for i in range(int(seconds * rate)):
            with engine.begin() as conn:
                emit(conn, "campaign.completed", tenant="acme", subject=f"campaign/l{i}",
                     payload={"campaign": f"l{i}"})  # fmt: skip
            pause = start + (i + 1) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        time.sleep(5)
    finally:
        proc.terminate()
        proc.wait(30)
    arrivals = receiver.close()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, occurred_at FROM events")).all()
    engine.dispose()
    if drop:
        drop()
    lat = []
    for event_id, occurred in rows:
        if isinstance(occurred, str):
            from datetime import datetime

            occurred = datetime.fromisoformat(occurred)
        if occurred.tzinfo is None:
            from datetime import UTC

            occurred = occurred.replace(tzinfo=UTC)
        if event_id in arrivals:
            lat.append((arrivals[event_id] - occurred.timestamp()) * 1000)
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {
        "events": len(rows),
        "delivered": len(lat),
        "p50_ms": round(pick(0.50), 1),
        "p99_ms": round(pick(0.99), 1),
        "max_ms": round(lat[-1], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="events per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backends", default="sqlite", help="sqlite,postgres")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    raw: dict = {"n": args.n, "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        receiver = Receiver(workdir)
        try:
            for r in range(args.rounds):
                result = {}
                order = ["floor", *backends] if r % 2 == 0 else [*backends, "floor"]
                for what in order:
                    if what == "floor":
                        result["floor"] = floor(receiver, args.n)
                    else:
                        result[what] = penguinctl(receiver, args.n, what, workdir, args.pg)
                raw["rounds"].append(result)
                print(f"round {r + 1}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in
                      result.items()), file=sys.stderr)  # fmt: skip
        finally:
            receiver.close()
        raw["latency"] = {
            b: latency(workdir, args.latency_seconds, 100, b, args.pg) for b in backends
        }
    med = {k: statistics.median(r[k] for r in raw["rounds"]) for k in raw["rounds"][0]}
    print(f"| what | events/s (median of {args.rounds}) | ratio to the floor |")
    print("|---|---|---|")
    print(f"| bare httpx loop (floor) | {med['floor']:,.0f} | 1.00x |")
    for b in backends:
        ratios = [r[b] / r["floor"] for r in raw["rounds"]]
        print(f"| penguinctl, {b} | {med[b]:,.0f} | {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f}) |")  # fmt: skip
    for b, lat in raw["latency"].items():
        print(
            f"\nlatency at 100 events/s, {b}: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
            f"max {lat['max_ms']} ms ({lat['delivered']} of {lat['events']} delivered)"
        )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
