"""`leads import` at 100,000 and 1,000,000 rows against each backend's bulk-load floor.

    python bench/leads_import.py                        # 100k + 1M rows, SQLite + PostgreSQL
    python bench/leads_import.py --sizes 100000 --backends sqlite
    python bench/leads_import.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

The file has the columns ``email,first_name,company`` (addresses at 5,000 domains), one row per
lead. For each backend and size, in the same run, interleaved:

- floor: SQLite, the ``sqlite3`` shell's ``.import`` into a bare table with a UNIQUE email
  column (a fresh file); PostgreSQL, ``psql``'s ``\\copy`` into a bare table with a UNIQUE email
  column (a fresh schema);
- penguinctl: a fresh state store (SQLite file / PostgreSQL schema) with one campaign (untimed
  set-up), then ``import_leads`` and the commit, timed, in a child process whose peak RSS
  (``ru_maxrss``) is reported. Every validation of the CLI's import runs (email-validator
  grammar, time zones, control characters, required variables, suppressions).

``--rounds N`` repeats each floor/penguinctl pair N times, interleaved, and reports medians
(the ratio: the median of each round's; peak RSS: the largest).

Goals (issue 24): penguinctl <= 4x the floor of its backend at 1,000,000 rows, peak RSS
< 300 MB, and linear: the 1,000,000-row time within 10-12x the 100,000-row time. Standard
output: Markdown; ``--json FILE`` writes the raw numbers.
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

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FLOOR_CPU: dict[str, float] = {}  # sqlite3's own CPU seconds per file
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from penguinctl.state.db import make_engine, migrate, session_scope
from penguinctl.campaigns.leads import import_leads
from tests.campaigndata import stored_campaign
engine = make_engine(sys.argv[1])
migrate(engine)
with session_scope(engine) as s:
    stored_campaign(s, tenant="bench", name="big")
with session_scope(engine) as s:
    from penguinctl.campaigns.models import Campaign
    import sqlalchemy as sa
    campaign = s.execute(sa.select(Campaign)).scalar_one()
    start, cpu = time.perf_counter(), time.process_time()
    result = import_leads(s, campaign, Path(sys.argv[2]))
    s.commit()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "rss_mb": rss, "created": result.created,
                  "rejected": result.rejected}))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_file(path: Path, n: int) -> None:
    with path.open("w") as f:
        f.write("email,first_name,company\n")
        for i in range(n):
            f.write(f"user{i}.x@d{i % 5000}.example.com,First{i},Company {i % 977}\n")


def floor_sqlite(csv_file: Path, work: Path) -> float:
    db = work / f"floor-{secrets.token_hex(4)}.db"
    script = (
        "CREATE TABLE t (email TEXT UNIQUE, first_name TEXT, company TEXT);\n"
        f".import --csv --skip 1 {csv_file} t\n"
    )
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["sqlite3", str(db)], input=script, text=True, check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    db.unlink()
    FLOOR_CPU[str(csv_file)] = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime
    )
    return seconds


def _psql_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def floor_pg(csv_file: Path, url: str) -> float:
    schema = f"floor_{secrets.token_hex(4)}"
    script = (
        f"CREATE SCHEMA {schema}; SET search_path = {schema};\n"
        "CREATE TABLE t (email TEXT UNIQUE, first_name TEXT, company TEXT);\n"
        f"\\copy t FROM '{csv_file}' CSV HEADER\n"
    )
    start = time.perf_counter()
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", _psql_url(url)], input=script, text=True, check=True
    )
    seconds = time.perf_counter() - start
    subprocess.run(
        ["psql", "-q", _psql_url(url), "-c", f"DROP SCHEMA {schema} CASCADE"], check=True
    )
    return seconds


def penguinctl(csv_file: Path, backend: str, url: str, work: Path) -> dict:
    from sqlalchemy import create_engine, text

    admin = None
    if backend == "sqlite":
        state = f"sqlite:///{work / f'state-{secrets.token_hex(4)}.db'}"
    else:
        schema = f"bench_{secrets.token_hex(5)}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
        state = f"{url}?options=-csearch_path%3D{schema}"
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, state, str(csv_file), str(REPO)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PENGUINCTL_HOME": str(work)},
        )
    finally:
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_of(backend: str, n: int, runs: list[dict]) -> dict:
    """Medians over the rounds (wall, CPU, RSS; the ratio is the median of each round's)."""

    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {
        "backend": backend,
        "rows": n,
        "rounds": len(runs),
        "floor_s": med("floor_s"),
        "floor_cpu_s": med("floor_cpu_s"),
        "seconds": med("seconds"),
        "cpu_s": med("cpu_s"),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "ratio": statistics.median(r["seconds"] / r["floor_s"] for r in runs),
        "created": n,
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg", default=PG)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument(
        "--rounds", type=int, default=1, help="floor/penguinctl pairs per size (medians)"
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="leads-bench-") as tmp:
        work = Path(tmp)
        for n in sizes:
            csv_file = work / f"leads-{n}.csv"
            make_file(csv_file, n)
            for backend in backends:
                runs = []
                for r in range(args.rounds):  # floor and penguinctl interleaved
                    if backend == "sqlite":
                        floor = floor_sqlite(csv_file, work)
                    else:
                        floor = floor_pg(csv_file, args.pg)
                    log(f"{backend} {n:,} round {r + 1}: floor {floor:.2f} s")
                    got = penguinctl(csv_file, backend, args.pg, work)
                    log(
                        f"{backend} {n:,} round {r + 1}: penguinctl {got['seconds']:.2f} s, "
                        f"CPU {got['cpu_s']:.2f} s, {got['rss_mb']} MB"
                    )
                    assert got["created"] == n and got["rejected"] == 0, got
                    floor_cpu = FLOOR_CPU.get(str(csv_file)) if backend == "sqlite" else None
                    runs.append({"floor_s": floor, "floor_cpu_s": floor_cpu, **got})
                rows.append(_median_of(backend, n, runs))
    print(
        "| backend | rows | floor (s) | penguinctl (s) | ratio | goal <= 4x | peak RSS | < 300 MB |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---|")
    for r in rows:
        ratio = r["ratio"]
        print(
            f"| {r['backend']} | {r['rows']:,} | {r['floor_s']:.2f} | {r['seconds']:.2f} | "
            f"{ratio:.2f}x | {'PASS' if ratio <= 4 else 'FAIL'} | {r['rss_mb']} MB | "
            f"{'PASS' if r['rss_mb'] < 300 else 'FAIL'} |"
        )
    print("\nCPU seconds (SQLite: both sides in one process each; PostgreSQL's server side not")
    print("counted, so only penguinctl's client is shown):\n")
    print("| backend | rows | floor CPU (s) | penguinctl CPU (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        fc = r.get("floor_cpu_s")
        ratio = f"{r['cpu_s'] / fc:.2f}x" if fc else "-"
        floor_text = f"{fc:.2f}" if fc else "-"
        print(f"| {r['backend']} | {r['rows']:,} | {floor_text} | {r['cpu_s']:.2f} | {ratio} |")
    for backend in backends:
        by = {r["rows"]: r["seconds"] for r in rows if r["backend"] == backend}
        if len(by) >= 2:
            small, big = min(by), max(by)
            scale = by[big] / by[small]
            expect = big / small
            verdict = "PASS" if scale <= expect * 1.2 else "FAIL"
            print(
                f"\n{backend}: {big:,} rows took {scale:.1f}x the time of {small:,} "
                f"(linear: {expect:.0f}x; goal <= {expect * 1.2:.0f}x) {verdict}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
