"""Run a penguinctl command with wall-clock timers around the engine's stages (profiling aid).

    python bench/stage_timer.py [--json FILE] -- apply -f spec.yaml --yes

Runs ``penguinctl.cli.main(argv)`` in this process after wrapping, when they exist, the functions
below with timers (cumulative wall seconds and call counts, main thread and worker threads
counted alike), then prints the table on stderr (and as JSON to --json). Nothing in penguinctl is
changed on disk; a function that was renamed is simply not timed. Used by bench/dns_rfc2136.py
--profile; timings include the wrappers' own overhead (negligible: a few calls per stage).
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import threading
import time
from collections import defaultdict

T0 = time.perf_counter()

# (module, attribute path) of what to time; the order is the report's order.
TARGETS = [
    ("penguinctl.cli.commands_apply", "_load"),
    ("penguinctl.engine", "Engine.close_interrupted_runs"),
    ("penguinctl.engine", "Engine.plan"),
    ("penguinctl.engine", "Engine._load_recorded"),
    ("penguinctl.engine", "Engine._build_desired"),
    ("penguinctl.engine", "Engine._check_graph"),
    ("penguinctl.engine", "Engine._providers"),
    ("penguinctl.engine", "Engine._actual"),
    ("penguinctl.engine", "diff"),
    ("penguinctl.cli.render", "render_plan"),
    ("penguinctl.engine", "Engine.apply"),
    ("penguinctl.engine", "Engine._refresh_computed"),
    ("penguinctl.engine", "Engine._run_stage"),
    ("penguinctl.engine", "Engine._record_success"),
    ("penguinctl.cli.render", "render_apply"),
    ("penguinctl.providers.dns.rfc2136", "Rfc2136Provider.read"),
    ("penguinctl.providers.dns.rfc2136", "Rfc2136Provider.apply_batch"),
    ("penguinctl.providers.dns.rfc2136", "Rfc2136Provider._update"),
    ("penguinctl.providers.dkim", "DkimProvider.apply_batch"),
    ("penguinctl.providers.dkim", "DkimProvider._adopt"),
]

stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
lock = threading.Lock()


def _wrap(label: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t
            with lock:
                stats[label][0] += dt
                stats[label][1] += 1

    return timed


def install() -> list[str]:
    missing = []
    for module, path in TARGETS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            missing.append(f"{module}:{path}")
            continue
        owner = mod
        *parents, name = path.split(".")
        for p in parents:
            owner = getattr(owner, p, None)
        if owner is None or not hasattr(owner, name):
            missing.append(f"{module}:{path}")
            continue
        setattr(owner, name, _wrap(path, getattr(owner, name)))
    return missing


def main() -> int:
    argv = sys.argv[1:]
    out_json = None
    if argv[:1] == ["--json"]:
        out_json, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    t_import = time.perf_counter()
    missing = install()
    imported = time.perf_counter() - t_import
    from penguinctl.cli import main as cli_main

    code = 0
    t_run = time.perf_counter()
    try:
        cli_main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    total = time.perf_counter() - T0
    run = time.perf_counter() - t_run
    rows = [("(import penguinctl modules timed below)", imported, 1), ("cli main()", run, 1)]
    rows += [(p, *stats[p]) for _, p in TARGETS if p in stats]
    err = sys.stderr
    print(f"\nstage timer: process {total:.2f} s (exit {code})", file=err)
    for label, sec, calls in rows:
        print(f"  {sec:8.3f} s  {int(calls):6d}x  {label}", file=err)
    if missing:
        print(f"  not timed (not found): {', '.join(missing)}", file=err)
    if out_json:
        with open(out_json, "w") as fh:
            json.dump({"process_s": total, "exit": code, "stages": {r[0]: r[1] for r in rows}}, fh)
    return code


if __name__ == "__main__":
    sys.exit(main())
