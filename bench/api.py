"""The HTTP API under load (issue 21), run by hand:

    python bench/api.py                      # SQLite state, 120 domains, 15 s per run
    python bench/api.py --pg                 # PostgreSQL state (PENGUINCTL_BENCH_PG)
    python bench/api.py --seconds 30 --connections 50

Two requests, each with Debian's `wrk` at 50 concurrent connections (2 threads), against a real
`penguinctl serve --no-scheduler` with a tenant viewer key:

- ``GET /api/v1/domains/{name}`` (authenticated: key lookup, rate limit, permission, the record);
- ``GET /api/v1/domains?limit=100`` (a 100-item keyset page).

The floor, in the same run: a bare FastAPI app on uvicorn (one process, as serve) returning the
same JSON bytes from memory on the same paths, without authentication or a database; its routes
are plain functions (FastAPI runs them in its thread pool). For reference, a second floor with
the same routes as coroutines (no thread pool: the API's own handlers are coroutines). Reported:
requests/s, p99 latency and CPU time per request (user + system, from ``/proc``) of each
server process, and the API's rate as a ratio of the floor's (goal >= 0.5x, p99 under 50 ms).
Prints one JSON line per measurement, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG = os.environ.get("PENGUINCTL_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

FLOOR = r"""
import sys
from pathlib import Path
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

one = Path(sys.argv[2]).read_bytes()
page = Path(sys.argv[3]).read_bytes()
app = FastAPI()

if sys.argv[4] == "def":  # the floor: plain functions, which FastAPI runs in its thread pool
    @app.get("/api/v1/domains/{name}")
    def domain(name: str) -> Response:
        return Response(one, media_type="application/json")

    @app.get("/api/v1/domains")
    def domains(limit: int = 50) -> Response:
        return Response(page, media_type="application/json")
else:  # for reference: coroutines, run on the event loop (as the API's handlers are)
    @app.get("/api/v1/domains/{name}")
    async def domain(name: str) -> Response:
        return Response(one, media_type="application/json")

    @app.get("/api/v1/domains")
    async def domains(limit: int = 50) -> Response:
        return Response(page, media_type="application/json")

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spec(n: int) -> str:
    docs = [
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: bench}\n"
        "spec: {plan: business}\n",
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx, tenant: bench}\n"
        "spec:\n  provider: external\n  external: {ips: [192.0.2.10]}\n"
        "  hostname: mx.bench.example\n",
        "apiVersion: penguinctl/v1\nkind: DnsProvider\nmetadata: {name: zones, tenant: bench}\n"
        "spec: {type: zonefile}\n",
    ]
    for i in range(n):
        docs.append(
            f"apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {{name: d{i:04d}.example, "
            "tenant: bench}\nspec:\n  server: mx\n  dns: zones\n"
            "  dmarc: {policy: none, rua: dmarc@bench.example}\n"
            "  mailboxes:\n    - {local: john, display_name: John, daily_limit: 30}\n"
        )
    return "---\n".join(docs)


def run(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "penguinctl", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"penguinctl {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def wait_http(url: str, headers: dict, timeout: float = 60) -> bytes:
    end = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=5) as res:
                return res.read()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, token: str | None, seconds: int, connections: int, pid: int | None = None
) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before if pid else None
    done = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "cpu_ms_per_request": None if cpu is None else round(cpu * 1000 / done, 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL state (PENGUINCTL_BENCH_PG)")
    ap.add_argument("--domains", type=int, default=120)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=50)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (bench/setup.sh does)")
    work = Path(tempfile.mkdtemp(prefix="penguinctl-api-bench-"))
    schema = None
    if args.pg:
        import secrets

        import sqlalchemy as sa

        schema = f"bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        state = f"{PG}?options=-csearch_path%3D{schema}"
    else:
        state = f"sqlite:///{work / 'state.db'}"
    env = {"PENGUINCTL_HOME": str(work / "home"), "PENGUINCTL_STATE": state,
           "PENGUINCTL_API_RATE": "1000000000", "PENGUINCTL_API_BURST": "1000000000"}  # fmt: skip
    procs: list[subprocess.Popen] = []
    try:
        (work / "spec.yaml").write_text(spec(args.domains))
        run(env, "apply", "-f", str(work / "spec.yaml"), "--yes")
        key = json.loads(run(env, "apikeys", "create", "--tenant", "bench", "--role", "viewer",
                             "-o", "json"))  # fmt: skip
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "penguinctl", "serve", "--no-scheduler", "--listen",
             f"127.0.0.1:{port}"], env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        auth = {"Authorization": f"Bearer {key['token']}"}
        base = f"http://127.0.0.1:{port}/api/v1"
        one = wait_http(f"{base}/domains/d0007.example", auth)
        page = wait_http(f"{base}/domains?limit=100", auth)
        assert len(json.loads(page)["items"]) == 100
        (work / "one.json").write_bytes(one)
        (work / "page.json").write_bytes(page)
        floors = []
        for style in ("def", "async"):
            floor_port = free_port()
            floor_cmd = [sys.executable, "-c", FLOOR, str(floor_port)]
            floor_cmd += [str(work / "one.json"), str(work / "page.json"), style]
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            procs.append(subprocess.Popen(floor_cmd, **quiet))
            floors.append(f"http://127.0.0.1:{floor_port}/api/v1")
            wait_http(f"{floors[-1]}/domains/d0007.example", {})
        floor, async_floor = floors
        rows = []
        for what, path in (("GET /domains/{name}", "/domains/d0007.example"),
                           ("GET /domains?limit=100", "/domains?limit=100")):  # fmt: skip
            wrk(base + path, key["token"], 3, args.connections)  # warm-up
            api = wrk(base + path, key["token"], args.seconds, args.connections, procs[0].pid)
            bare = wrk(floor + path, None, args.seconds, args.connections, procs[1].pid)
            bare_async = wrk(async_floor + path, None, args.seconds, args.connections, procs[2].pid)
            row = {
                "request": what,
                "state": "postgresql" if args.pg else "sqlite",
                "api": api,
                "floor": bare,
                "ratio": round(api["rps"] / bare["rps"], 3),
                "async_floor": bare_async,
                "async_ratio": round(api["rps"] / bare_async["rps"], 3),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
        print("\n| request | API req/s | API p99 | API CPU/req | floor req/s | floor p99 | "
              "floor CPU/req | ratio | async floor req/s, CPU/req | ratio to it |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            a, f, af = r["api"], r["floor"], r["async_floor"]
            print(f"| `{r['request']}` ({r['state']}) | {a['rps']:.0f} | {a['p99_ms']:.1f} ms | "
                  f"{a['cpu_ms_per_request']:.2f} ms | {f['rps']:.0f} | {f['p99_ms']:.1f} ms | "
                  f"{f['cpu_ms_per_request']:.2f} ms | {r['ratio']:.2f}x | {af['rps']:.0f}, "
                  f"{af['cpu_ms_per_request']:.2f} ms | {r['async_ratio']:.2f}x |")  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if schema is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
