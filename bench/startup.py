"""Start-up of penguinctl from a regular (non-editable) install (issue 24, section 2).

    python bench/startup.py                 # ~2-4 min: builds the wheel, 15 interleaved rounds
    python bench/startup.py --rounds 30 --domains 50

What it measures, every command run as a fresh process, the commands of one round interleaved
(the order rotates each round), medians of wall and CPU (user + system, from wait4):

- `penguinctl --help` from **bench/.venv-penguinctl**: a virtualenv holding penguinctl installed
  from a wheel built from this checkout (`pip wheel`, then `pip install`: bytecode compiled at
  install, no editable-install finder), against `octodns-sync --help` from bench/.venv-anchors
  (octoDNS as pip installs it). Goal: at most 0.8x.
- the read-only commands `get domains` and `dkim status` (same install), against a state made by
  one untimed `apply` of a spec with `--domains` domains (zonefile DNS, DKIM keys generated).
  Their floor is `python -c pass` of that venv plus their real work: the same command run again
  inside one warm process (everything imported, `penguinctl.cli.main([...])` called repeatedly;
  median of the calls after the first). Goal: the whole process within 2x of that floor.
  They run as a user runs them: warm start on (`penguinctl.warm`; the bench waits for the
  server the first command starts), and, for reference, cold (`PENGUINCTL_WARM=0`: every import
  paid by the command's own process).

Results: bench/results/<date>-startup.json; Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
VENV = BENCH / ".venv-penguinctl"
sys.path.insert(0, str(BENCH))

import gen  # noqa: E402  (bench/gen.py: the spec generator)
import harness  # noqa: E402  (bench/harness.py: run(), median(), log(), ...)

COLD = "PENGUINCTL_WARM=0 penguinctl "
HELP_GOAL = 0.8
READ_GOAL = 2.0
WARM = """
import json, os, statistics, sys, time, contextlib, io
from penguinctl.cli import main
argv = json.loads(sys.argv[1])
times = []
for i in range(int(sys.argv[2]) + 1):
    out = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(argv)
    times.append(time.perf_counter() - t)
print(json.dumps({"warm_s": statistics.median(times[1:]), "first_s": times[0]}))
"""


def install(rebuild: bool) -> Path:
    """bench/.venv-penguinctl with penguinctl from a wheel of this checkout (not editable)."""
    py = VENV / "bin" / "python"
    if py.exists() and not rebuild:
        return py
    fresh = not py.exists()
    if fresh:
        harness.log(f"creating {VENV} (penguinctl from a wheel of {REPO})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.run(
            [str(py), "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, str(REPO)],
            check=True,
        )
        wheel = next(Path(wheels).glob("penguinctl-*.whl"))
        # --rebuild: this checkout's penguinctl again, the dependencies as they are
        extra = [] if fresh else ["--force-reinstall", "--no-deps"]
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *extra, str(wheel)], check=True)
    if fresh:  # bench/fanout.py run with this venv imports tests/sshd.py (which imports pytest)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "pytest"], check=True)
    return py


def env(home: Path, warm: str = "1") -> dict[str, str]:
    return harness.bench_env(
        PENGUINCTL_HOME=str(home),
        PENGUINCTL_TODAY="2026-11-23",
        PENGUINCTL_WARM=warm,
        PENGUINCTL_WARM_IDLE="120",  # the bench's server leaves soon after the bench
    )


def wait_for_warm_server(py: Path, e: dict[str, str]) -> None:
    """Until the warm server that the warm-up runs started listens (it imports for ~0.5 s)."""
    import time

    r = harness.run(
        [str(py), "-c", "from penguinctl.warm.protocol import socket_path; print(socket_path())"],
        env=e,
    )
    path = Path(r.out.strip())
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"the warm server did not start ({path} is missing)")
        time.sleep(0.2)


def prepare_state(py: Path, work: Path, domains: int) -> Path:
    home = work / "home"
    spec_dir = work / "spec"
    subprocess.run(
        [sys.executable, str(BENCH / "gen.py"), "spec", "-n", str(domains), "--out", str(spec_dir)],
        check=True,
        capture_output=True,
    )
    pc = str(VENV / "bin" / "penguinctl")
    r = harness.run([pc, "apply", "-f", str(spec_dir), "--yes"], env=env(home))
    if r.rc != 0:
        sys.exit(f"setup apply failed: {r.tail()}")
    harness.log(f"setup: apply of {domains} domains in {r.wall:.1f} s (untimed)")
    return home


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--domains", type=int, default=50, help="domains in the read-only state")
    ap.add_argument("--warm-calls", type=int, default=10)
    ap.add_argument(
        "--rebuild", action="store_true", help="reinstall this checkout into bench/.venv-penguinctl"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    _ = gen  # imported for its path check: bench/gen.py must be there
    octo = BENCH / ".venv-anchors" / "bin" / "octodns-sync"
    if not octo.exists():
        sys.exit(f"{octo} is missing: run `bash bench/setup.sh` first")
    py = install(args.rebuild)
    pc = str(VENV / "bin" / "penguinctl")
    work = Path(tempfile.mkdtemp(prefix="penguinctl-bench-startup-"))
    try:
        home = prepare_state(py, work, args.domains)
        e = env(home)
        cold = env(home, warm="0")
        cmds = {
            "python -c pass": [str(py), "-c", "pass"],
            "penguinctl --help": [pc, "--help"],
            "octodns-sync --help": [str(octo), "--help"],
            "penguinctl get domains": [pc, "get", "domains"],
            "penguinctl dkim status": [pc, "dkim", "status"],
            COLD + "get domains": [pc, "get", "domains"],
            COLD + "dkim status": [pc, "dkim", "status"],
        }
        envs = {k: cold if k.startswith(COLD) else e for k in cmds}
        for name, cmd in cmds.items():  # warm-up: bytecode, page cache, the warm server
            r = harness.run(cmd, env=envs[name])
            if r.rc != 0:
                sys.exit(f"{name}: exit {r.rc}: {r.tail()}")
        wait_for_warm_server(py, e)
        runs: dict[str, list] = {k: [] for k in cmds}
        names = list(cmds)
        for rnd in range(args.rounds):
            k = rnd % len(names)
            for name in names[k:] + names[:k]:
                r = harness.run(cmds[name], env=envs[name])
                if r.rc != 0:
                    sys.exit(f"{name}: exit {r.rc}: {r.tail()}")
                runs[name].append({"wall_s": r.wall, "cpu_s": r.cpu, "rc": r.rc})
        warm = {}
        for name in ("penguinctl get domains", "penguinctl dkim status"):
            argv_ = cmds[name][1:]
            r = harness.run(
                [str(py), "-c", WARM, json.dumps(argv_), str(args.warm_calls)], env=cold
            )
            if r.rc != 0:
                sys.exit(f"warm {name}: {r.tail()}")
            warm[name] = json.loads(r.out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {
        k: {
            "wall_s": harness.median([x["wall_s"] for x in v]),
            "cpu_s": harness.median([x["cpu_s"] for x in v]),
        }
        for k, v in runs.items()
    }
    floor = med["python -c pass"]["wall_s"]
    rows = []
    help_ratio = med["penguinctl --help"]["wall_s"] / med["octodns-sync --help"]["wall_s"]
    help_cpu = med["penguinctl --help"]["cpu_s"] / med["octodns-sync --help"]["cpu_s"]
    rows.append(
        {
            "target": "`penguinctl --help` (wheel install) vs `octodns-sync --help`",
            "measured": f"{med['penguinctl --help']['wall_s'] * 1000:.0f} ms vs "
            f"{med['octodns-sync --help']['wall_s'] * 1000:.0f} ms = {help_ratio:.2f}x "
            f"(CPU {help_cpu:.2f}x)",
            "goal": f"<= {HELP_GOAL}x",
            "pass": help_ratio <= HELP_GOAL,
        }
    )
    for name in ("penguinctl get domains", "penguinctl dkim status"):
        bound = floor + warm[name]["warm_s"]
        ratio = med[name]["wall_s"] / bound
        rows.append(
            {
                "target": f"`{name.removeprefix('penguinctl ')}` ({args.domains} domains) vs "
                "`python -c pass` + its real work (warm, in-process)",
                "measured": f"{med[name]['wall_s'] * 1000:.0f} ms vs "
                f"{floor * 1000:.0f} + {warm[name]['warm_s'] * 1000:.0f} ms = {ratio:.2f}x",
                "goal": f"<= {READ_GOAL}x",
                "pass": ratio <= READ_GOAL,
            }
        )
    now = datetime.now(UTC)
    results = {
        "date": now.strftime("%Y-%m-%d"),
        "finished": now.isoformat(timespec="seconds"),
        "load": harness.loadavg(),
        "machine": harness.machine(),
        "rounds": args.rounds,
        "medians": med,
        "warm": warm,
        "runs": runs,
        "targets": rows,
    }
    lines = [
        f"### Start-up, regular install (median of {args.rounds} interleaved rounds, "
        f"1-min load {results['load']})",
        "",
        "| command | median wall | median CPU |",
        "|---|---:|---:|",
    ]
    for k, v in med.items():
        lines.append(f"| `{k}` | {v['wall_s'] * 1000:.0f} ms | {v['cpu_s'] * 1000:.0f} ms |")
    for k, v in warm.items():
        lines.append(f"| `{k}`, warm in-process (real work) | {v['warm_s'] * 1000:.1f} ms | |")
    lines += ["", "| target | measured | goal | result |", "|---|---|---|---|"]
    for t in rows:
        lines.append(
            f"| {t['target']} | {t['measured']} | {t['goal']} | {harness.verdict(t['pass'])} |"
        )
    print("\n".join(lines))
    out = args.out or RESULTS / f"{results['date']}-startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    harness.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
