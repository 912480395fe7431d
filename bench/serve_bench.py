"""Control-plane benchmarks (issue 19), run by hand:

    python bench/serve_bench.py idle --minutes 10          # idle serve: CPU share and RSS
    python bench/serve_bench.py failover --runs 5          # SIGKILL the leader: time to a new one
    python bench/serve_bench.py jobs --domains 1000        # dkim-rotate and drift per run

Anchors in the same run: `idle` reports a bare `python -c "import time; time.sleep(N)"` process's
CPU and RSS next to serve's; `jobs` reports the idle dkim-rotate run next to one on a tenant with
10x fewer domains (an O(due) run costs the same), and drift next to `penguinctl plan` of the
same spec. `failover` needs PostgreSQL (PENGUINCTL_BENCH_PG, default the test server).
Standard library only (plus penguinctl itself for the job runs). Prints one JSON line per result.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG = os.environ.get("PENGUINCTL_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(env: dict, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "penguinctl", "serve", "--listen", f"127.0.0.1:{port}", *extra],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def role(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as res:
            return json.load(res)["checks"]["scheduler"]
    except Exception:
        return None


def wait(pred, timeout: float = 60.0, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise SystemExit("timed out")


def quickstart_home(work: Path, state: str | None = None) -> dict:
    env = {"PENGUINCTL_HOME": str(work / "home"), "PENGUINCTL_TODAY": "2026-11-23"}
    if state:
        env["PENGUINCTL_STATE"] = state
    subprocess.run(
        [
            sys.executable,
            "-m",
            "penguinctl",
            "apply",
            "-f",
            str(REPO / "examples" / "quickstart.yaml"),
            "--yes",
        ],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env


def idle(minutes: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = quickstart_home(Path(tmp))
        port = free_port()
        proc = serve(env, port, "--with-worker")
        anchor = subprocess.Popen(
            [sys.executable, "-c", f"import time; time.sleep({minutes * 60 + 60})"]
        )
        wait(lambda: role(port) == "leader")
        time.sleep(5)  # past start-up
        c0, a0, t0 = cpu_seconds(proc.pid), cpu_seconds(anchor.pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < minutes * 60:
            time.sleep(5)
            peak = max(peak, rss_mib(proc.pid))
        wall = time.monotonic() - t0
        cpu, acpu = cpu_seconds(proc.pid) - c0, cpu_seconds(anchor.pid) - a0
        print(
            json.dumps(
                {
                    "bench": "serve-idle",
                    "minutes": minutes,
                    "cpu_share_of_a_core": round(cpu / wall, 5),
                    "rss_mib_peak": round(peak, 1),
                    "anchor_sleep_cpu_share": round(acpu / wall, 5),
                    "anchor_sleep_rss_mib": round(rss_mib(anchor.pid), 1),
                }
            )
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        anchor.kill()


def failover(runs: int) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    schema = f"bench_failover_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    state = f"{PG}?options=-csearch_path%3D{schema}"
    times = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = quickstart_home(Path(tmp), state)
            procs = {}
            for _ in range(3):
                port = free_port()
                procs[port] = serve(env, port)
            for _ in range(runs):
                leader = wait(lambda: next((p for p in procs if role(p) == "leader"), None))
                time.sleep(3)
                procs[leader].send_signal(signal.SIGKILL)
                procs[leader].wait()
                killed = time.monotonic()
                del procs[leader]
                wait(lambda: any(role(p) == "leader" for p in procs), timeout=60, step=0.02)
                times.append(time.monotonic() - killed)
                port = free_port()
                procs[port] = serve(env, port)  # keep three replicas
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    print(
        json.dumps(
            {
                "bench": "failover",
                "runs": runs,
                "seconds": [round(t, 2) for t in times],
                "median_seconds": round(statistics.median(times), 2),
                "goal_seconds": 30,
            }
        )
    )


def jobs(domains: int) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from clitools import agency_spec  # the spec generator the tests use

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {"PENGUINCTL_HOME": str(work / "home"), "PENGUINCTL_TODAY": "2026-11-23"}
        full = {**os.environ, **env}
        for tenant, n in (("big", domains), ("small", max(1, domains // 10))):
            spec = work / f"{tenant}.yaml"
            spec.write_text(
                agency_spec(n, tenant=tenant)
                .replace("shared-mx", f"{tenant}-mx")
                .replace("mx.agency-mail", f"mx.{tenant}-mail")  # names are owned per tenant
                .replace("name: zones", f"name: {tenant}-zones")
                .replace("dns: zones", f"dns: {tenant}-zones")
                .replace("client", f"{tenant}-c")
            )
            t = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "penguinctl",
                    "apply",
                    "-f",
                    str(spec),
                    "--yes",
                    "-o",
                    "json",
                ],
                env=full,
                check=True,
                capture_output=True,
            )
            print(
                json.dumps(
                    {
                        "bench": "setup-apply",
                        "tenant": tenant,
                        "domains": n,
                        "seconds": round(time.monotonic() - t, 1),
                    }
                )
            )

        def job(name: str, tenant: str) -> float:
            t = time.monotonic()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "penguinctl",
                    "jobs",
                    "run",
                    name,
                    "--tenant",
                    tenant,
                    "-o",
                    "json",
                ],
                env=full,
                check=True,
                capture_output=True,
                text=True,
            )
            took = time.monotonic() - t
            run = json.loads(out.stdout)["runs"][0]
            return took, run

        for name in ("dkim-rotate", "drift"):
            for tenant in ("big", "small"):
                first, run1 = job(name, tenant)
                again = [job(name, tenant) for _ in range(3)]
                print(
                    json.dumps(
                        {
                            "bench": name,
                            "tenant": tenant,
                            "first_run_seconds": round(first, 2),
                            "first_run_job_seconds": run1.get("summary", {}).get("took"),
                            "idle_run_seconds_median": round(
                                statistics.median(a for a, _ in again), 2
                            ),
                            "idle_summary": {
                                k: v
                                for k, v in again[0][1]["summary"].items()
                                if k in ("due", "indexed", "drift", "changes")
                            },
                        }
                    )
                )
        t = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "penguinctl", "plan", "-f", str(work / "big.yaml")],
            env=full,
            check=True,
            capture_output=True,
        )
        print(
            json.dumps(
                {"bench": "anchor-plan", "tenant": "big", "seconds": round(time.monotonic() - t, 2)}
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("idle").add_argument("--minutes", type=float, default=10.0)
    sub.add_parser("failover").add_argument("--runs", type=int, default=5)
    sub.add_parser("jobs").add_argument("--domains", type=int, default=1000)
    args = parser.parse_args()
    if args.what == "idle":
        idle(args.minutes)
    elif args.what == "failover":
        failover(args.runs)
    else:
        jobs(args.domains)


if __name__ == "__main__":
    main()
