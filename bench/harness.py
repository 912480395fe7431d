"""Helpers every benchmark script shares: running a measured process (wall time, peak RSS and
CPU from wait4), the load check, the environment of measured processes, versions and machine
facts, number formatting. Standard library only; imported by bench/run.py and the section
scripts (bench/dns_rfc2136.py, bench/dns_verify.py), none of which imports another.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ANCHORS = BENCH / ".venv-anchors" / "bin"
RESULTS = BENCH / "results"
GIB_KB = 1024 * 1024  # "under 1 GB" is checked as under 1 GiB of peak RSS

# ----------------------------------------------------------------------------- process helpers


class Run:
    def __init__(self, cmd, rc, wall, maxrss_kb, out, err, cpu=0.0):
        self.cmd, self.rc, self.wall, self.maxrss_kb, self.out, self.err = (
            cmd,
            rc,
            wall,
            maxrss_kb,
            out,
            err,
        )
        self.cpu = cpu  # user + system seconds of the child and its waited-for children

    @property
    def rss_mib(self) -> float:
        return self.maxrss_kb / 1024

    def tail(self, n: int = 600) -> str:
        return (self.err or self.out or "")[-n:].strip()


def run(cmd, *, env=None, cwd=None, timeout=None, out_path: Path | None = None) -> Run:
    """Run cmd; wall time by perf_counter, peak RSS of the child (and its children) by wait4."""
    with contextlib.ExitStack() as stack:
        if out_path:
            out_f = stack.enter_context(out_path.open("w+b"))
        else:
            out_f = stack.enter_context(tempfile.TemporaryFile())
        err_f = stack.enter_context(tempfile.TemporaryFile())
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out_f,
            stderr=err_f,
            start_new_session=True,
        )
        timer = None
        if timeout:
            timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if timer:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out = out_f.read().decode(errors="replace")
        err = err_f.read().decode(errors="replace")
    return Run(
        cmd, proc.returncode, wall, usage.ru_maxrss, out, err, usage.ru_utime + usage.ru_stime
    )


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def note_load(results: dict, section: str, args=None) -> None:
    """Other work on the machine skews every number: wait a while for it to calm down (up to
    --wait-idle seconds), then record the load when the section starts."""
    waited = 0.0
    la = loadavg()
    while args is not None and la is not None and la > args.idle_load and waited < args.wait_idle:
        if waited == 0:
            log(f"load average {la:.2f} > {args.idle_load}: waiting up to {args.wait_idle:.0f} s")
        time.sleep(10)
        waited += 10
        la = loadavg()
    results.setdefault("load_at_start", {})[section] = la
    if la is not None and la > (args.idle_load if args is not None else 0.5):
        log(
            f"warning: 1-minute load average is {la:.2f} before '{section}': "
            "other processes compete for the CPUs and the numbers will be noisy"
        )


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f", none="—"):
    return none if x is None else format(x, spec)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- environments


def penguinctl_cmd() -> list[str]:
    exe = shutil.which("penguinctl")
    return [exe] if exe else [sys.executable, "-m", "penguinctl"]


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process.

    PYTHONDONTWRITEBYTECODE is dropped: with it set (some sandboxes do), a package run from a
    source tree (penguinctl here) is recompiled at every start, while pip-installed anchors have
    their bytecode cached since install: not the same work. The first run writes __pycache__
    (gitignored); warm-up runs make sure every timed run reads it.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PENGUINCTL_STATE")
    }
    env.update(extra)
    return env


def penguinctl_env(home: Path) -> dict[str, str]:
    return bench_env(PENGUINCTL_HOME=str(home))


def anchor(name: str) -> str:
    path = ANCHORS / name
    if not path.exists():
        sys.exit(f"{path} is missing: run `bash bench/setup.sh` first")
    return str(path)


def versions() -> dict:
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
            return (
                (r.stdout.strip() or r.stderr.strip()).splitlines()[0]
                if r.returncode == 0
                else None
            )
        except Exception:
            return None

    py = str(ANCHORS / "python")
    return {
        "python": platform.python_version(),
        "penguinctl": (out([*penguinctl_cmd(), "--version"]) or "").removeprefix("penguinctl "),
        "penguinctl_cmd": " ".join(penguinctl_cmd()),
        "cryptography": out(
            [sys.executable, "-c", "import cryptography; print(cryptography.__version__)"]
        ),
        "octodns": out([py, "-c", "import octodns; print(octodns.__version__)"]),
        "ansible-core": out([py, "-c", "import ansible.release as r; print(r.__version__)"]),
        "hyperfine": out(["hyperfine", "--version"]) if shutil.which("hyperfine") else None,
    }


def machine() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / GIB_KB:.1f} GiB"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")
