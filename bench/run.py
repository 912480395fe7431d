"""penguinctl performance benchmarks against their anchors (product spec, section 7).

Run by hand, never by CI or the test suite:

    bash bench/setup.sh && python bench/run.py            # full run (1,000 and 10,000 domains)
    python bench/run.py --quick                           # smaller N, fewer runs (a few minutes)
    python bench/run.py --only help,dkim                  # a subset: help, plan, dkim, dns

Standard library only. penguinctl runs from this Python environment (the `penguinctl` console
script when installed, else `python -m penguinctl` from the repository); octoDNS and ansible-core
run from bench/.venv-anchors (made by bench/setup.sh). Every wall time is a median over several
runs; peak RSS is the child's ru_maxrss from wait4(2). Prints Markdown tables and writes
bench/results/<date>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from harness import (  # bench/harness.py: process helpers shared with the other benchmarks
    BENCH,
    REPO,
    RESULTS,
    anchor,
    bench_env,
    fmt,
    loadavg,
    log,
    machine,
    median,
    note_load,
    penguinctl_cmd,
    penguinctl_env,
    run,
    verdict,
    versions,
)

# ----------------------------------------------------------------------------- 1. CLI start


BASELINE = "penguinctl --help (baseline tree)"
THIS_TREE = "penguinctl --help (this tree, as the baseline)"


def _baseline_help(args) -> dict[str, list[str]]:
    """``--help-baseline DIR``: the same interpreter running another penguinctl source tree
    (e.g. ``git archive main | tar -x -C DIR``), so a change's start-up cost is measured against
    the code before it, in the same run."""
    if not args.help_baseline:
        return {}
    src = Path(args.help_baseline).resolve()
    if not (src / "penguinctl" / "cli" / "__init__.py").is_file():
        sys.exit(f"--help-baseline {src}: not a penguinctl source tree")

    def launcher(tree: Path) -> list[str]:
        code = f"import sys; sys.path[:0] = [{str(tree)!r}]; import penguinctl.cli as c; c.main()"
        return [sys.executable, "-c", code, "--help"]

    return {THIS_TREE: launcher(REPO), BASELINE: launcher(src)}


def bench_help(args, tmp: Path) -> dict:
    home = tmp / "help-home"
    home.mkdir()
    env = penguinctl_env(home)
    # Two floors: this environment's interpreter (penguinctl's) and the anchors' venv interpreter.
    # They can differ a lot: a site-packages .pth file that imports something at every start
    # (seen here: one importing certifi, ~60 ms) slows every command of that environment.
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c pass (anchors venv)": [anchor("python"), "-c", "pass"],
        "penguinctl --help": [*penguinctl_cmd(), "--help"],
        "octodns-sync --help": [anchor("octodns-sync"), "--help"],
        **_baseline_help(args),
        "ansible-playbook --help": [anchor("ansible-playbook"), "--help"],
    }
    result: dict = {"runs": args.help_runs, "commands": {}}
    ok = {}
    for name, cmd in cmds.items():
        r = run(cmd, env=env, timeout=120)
        if r.rc != 0:
            log(f"help: `{name}` failed (exit {r.rc}): {r.tail()}")
            result["commands"][name] = {"error": f"exit {r.rc}: {r.tail(300)}"}
        else:
            ok[name] = cmd
    # Several rounds, the order of the commands reversed every other round, all times pooled:
    # on a shared machine a burst of someone else's work then hits every command alike.
    times: dict[str, list[float]] = {name: [] for name in ok}
    # CPU time (user + system) per run: unlike wall time it barely moves with other load
    cpus: dict[str, list[float]] = {name: [] for name in ok}
    per_round = max(5, -(-args.help_runs // args.help_rounds))
    if shutil.which("hyperfine") and not args.no_hyperfine:
        result["tool"] = f"hyperfine, {args.help_rounds} rounds"
        for rnd in range(args.help_rounds):
            out = tmp / f"hyperfine-{rnd}.json"
            names = list(ok) if rnd % 2 == 0 else list(reversed(ok))
            hf = ["hyperfine", "-N", "--style", "none", "--warmup", "3"]
            hf += ["--runs", str(per_round), "--export-json", str(out)]
            for name in names:
                hf += ["-n", name, shlex.join(ok[name])]
            r = subprocess.run(hf, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"hyperfine failed: {r.stderr[-800:]}")
            for res in json.loads(out.read_text())["results"]:
                times[res["command"]].extend(res["times"])
                cpus[res["command"]].append(res["user"] + res["system"])  # this round's mean
    else:
        result["tool"] = f"subprocess loop, {args.help_rounds} rounds"
        for cmd in ok.values():
            for _ in range(3):
                run(cmd, env=env)
        for rnd in range(args.help_rounds):
            names = list(ok) if rnd % 2 == 0 else list(reversed(ok))
            for name in names:
                runs = [run(ok[name], env=env) for _ in range(per_round)]
                times[name].extend(r.wall for r in runs)
                cpus[name].extend(r.cpu for r in runs)
    result["runs"] = per_round * args.help_rounds
    for name, ts in times.items():
        result["commands"][name] = {
            "median_ms": median(ts) * 1000,
            "mean_ms": statistics.fmean(ts) * 1000,
            "min_ms": min(ts) * 1000,
            "max_ms": max(ts) * 1000,
            "cpu_ms": statistics.fmean(cpus[name]) * 1000,
            "runs": len(ts),
        }
    return result


# ----------------------------------------------------------------------------- 2. plan (+ apply)


def gen(*argv: str) -> str:
    r = subprocess.run(
        [sys.executable, str(BENCH / "gen.py"), *argv], capture_output=True, text=True, cwd=REPO
    )
    if r.returncode != 0:
        raise RuntimeError(f"gen.py {' '.join(argv)} failed: {r.stderr[-800:]}")
    return r.stdout.strip()


def zones_dir_of(home: Path) -> Path:
    return home / "zones"


def bench_size(args, tmp: Path, n: int) -> dict:
    """Apply an N-domain spec on fresh state (timed), then time plan vs octoDNS (no changes)."""
    work = tmp / f"n{n}"
    work.mkdir()
    spec = Path(gen("spec", "--domains", str(n), "--out", str(work)))
    res: dict = {"domains": n, "apply": {"runs": []}, "plan": {"runs": []}, "octodns": {"runs": []}}
    pc = penguinctl_cmd()
    apply_runs = args.apply_runs if n <= 1000 else 1
    home = None
    for i in range(apply_runs):
        home = work / f"home{i}"
        home.mkdir()
        log(f"n={n}: penguinctl apply on fresh state ({i + 1}/{apply_runs})")
        r = run(
            [*pc, "apply", "-f", str(spec), "--yes"],
            env=penguinctl_env(home),
            cwd=REPO,
            timeout=args.timeout,
            out_path=work / f"apply{i}.out",
        )
        res["apply"]["runs"].append(
            {"wall_s": r.wall, "cpu_s": r.cpu, "rss_mib": r.rss_mib, "rc": r.rc}
        )
        log(f"  exit {r.rc}, {r.wall:.1f} s, {r.rss_mib:.0f} MiB")
        if r.rc != 0:
            res["apply"]["error"] = f"exit {r.rc}: {r.tail()}"
            return res
        if i < apply_runs - 1:
            shutil.rmtree(home)
    res["apply"]["median_wall_s"] = median([x["wall_s"] for x in res["apply"]["runs"]])
    res["apply"]["median_rss_mib"] = median([x["rss_mib"] for x in res["apply"]["runs"]])
    res["apply"]["median_cpu_s"] = median([x["cpu_s"] for x in res["apply"]["runs"]])
    res["apply"]["keys_per_s"] = n / res["apply"]["median_wall_s"]

    # A sample of what penguinctl says it publishes, to show the octoDNS records are the same.
    r = run(
        [*pc, "dns", "records", "client00000.example", "-o", "json"],
        env=penguinctl_env(home),
        cwd=REPO,
        timeout=300,
    )
    if r.rc == 0:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            res["penguinctl_records_sample"] = sorted(
                f"{x['name']} {x['type']}" for x in json.loads(r.out)
            )

    zones = zones_dir_of(home)
    if not zones.is_dir() or not any(zones.iterdir()):
        exported = home / "exported-zones"
        log(f"  no zone files in {zones}; using `penguinctl dns export --out-dir`")
        r = run(
            [*pc, "dns", "export", "--format", "zonefile", "--out-dir", str(exported)],
            env=penguinctl_env(home),
            cwd=REPO,
            timeout=args.timeout,
        )
        if r.rc != 0:
            res["octodns"]["error"] = f"dns export failed: {r.tail()}"
            return res
        zones = exported
    octo = work / "octodns"
    log(f"n={n}: generating the octoDNS config from {zones}")
    res["octodns"]["records"] = json.loads(
        gen("octodns", "--zones-dir", str(zones), "--out", str(octo))
    )
    res["octodns"]["config"] = args.octodns_config

    runs = args.runs if args.runs else (5 if n <= 1000 else 3)
    cfg = "config.yaml" if args.octodns_config == "dynamic" else "config-explicit.yaml"
    # Interleaved (penguinctl, octoDNS, octoDNS, penguinctl, ...) so that other work on the machine
    # hits both alike.
    failed = set()
    for i in range(runs):
        order = ("plan", "octodns") if i % 2 == 0 else ("octodns", "plan")
        for tool in order:
            if tool in failed:
                continue
            if tool == "plan":
                log(f"n={n}: penguinctl plan ({i + 1}/{runs})")
                r = run(
                    [*pc, "plan", "-f", str(spec), "--detailed-exitcode"],
                    env=penguinctl_env(home),
                    cwd=REPO,
                    timeout=args.timeout,
                    out_path=work / "plan.out",
                )
                ok = r.rc == 0
                extra = {}
                if r.rc == 2:
                    res["plan"]["warning"] = "plan reported changes against the state just applied"
                    ok = True
            else:
                log(f"n={n}: octodns-sync dry run ({i + 1}/{runs})")
                r = run(
                    [anchor("octodns-sync"), f"--config-file={cfg}"],
                    env=bench_env(),
                    cwd=octo,
                    timeout=args.timeout,
                )
                ok = r.rc == 0
                extra = {"no_changes": "No changes were planned" in (r.out + r.err)}
                if ok and not extra["no_changes"]:
                    res["octodns"]["warning"] = "octoDNS planned changes: inputs not equivalent"
            res[tool]["runs"].append(
                {
                    "wall_s": r.wall,
                    "cpu_s": r.cpu,
                    "rss_mib": r.rss_mib,
                    "rc": r.rc,
                    "load": loadavg(),
                    **extra,
                }
            )
            log(f"  exit {r.rc}, {r.wall:.2f} s (CPU {r.cpu:.2f} s), {r.rss_mib:.0f} MiB {extra}")
            if not ok:
                res[tool]["error"] = f"exit {r.rc}: {r.tail()}"
                failed.add(tool)
    for key in ("plan", "octodns"):
        ok = (
            [x for x in res[key]["runs"] if x["rc"] in (0, 2)]
            if key == "plan"
            else [x for x in res[key]["runs"] if x["rc"] == 0]
        )
        res[key]["median_wall_s"] = median([x["wall_s"] for x in ok])
        res[key]["median_rss_mib"] = median([x["rss_mib"] for x in ok])
        res[key]["median_cpu_s"] = median([x["cpu_s"] for x in ok])
        res[key]["max_rss_mib"] = max((x["rss_mib"] for x in ok), default=None)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return res


# ----------------------------------------------------------------------------- 3. DKIM

SINGLE_CORE = """
import sys, time
from cryptography.hazmat.primitives.asymmetric import rsa
duration = float(sys.argv[1]); n = 0; t0 = time.perf_counter(); c0 = time.process_time()
while True:
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n += 1
    dt = time.perf_counter() - t0
    if dt >= duration and n >= 20:
        break
print(n, dt, time.process_time() - c0)
"""

GENERATE_MANY = """
import json, sys, time
from penguinctl.dkim import generate_many
n = int(sys.argv[1])
t0 = time.perf_counter()
keys = generate_many(n)
keys = list(keys)
dt = time.perf_counter() - t0
print(json.dumps({"n": len(keys), "seconds": dt}))
"""


def _single_core(args) -> tuple[float, float]:
    """(keys/s, CPU share) of RSA-2048 generation in one process for --dkim-seconds."""
    r = run([sys.executable, "-c", SINGLE_CORE, str(args.dkim_seconds)], env=bench_env())
    count, dt, cpu = r.out.split()
    return int(count) / float(dt), float(cpu) / float(dt)


def _generate_many(args) -> dict:
    r = run(
        [sys.executable, "-c", GENERATE_MANY, str(args.dkim_keys)],
        env=bench_env(),
        cwd=REPO,
        timeout=args.timeout,
    )
    if r.rc != 0:
        return {"error": f"exit {r.rc}: {r.tail()}"}
    data = json.loads(r.out.strip().splitlines()[-1])
    return {
        "n": data["n"],
        "seconds": data["seconds"],
        "process_wall_s": r.wall,
        "process_cpu_s": r.cpu,
        "rss_mib": r.rss_mib,
    }


def bench_dkim(args, tmp: Path) -> dict:
    cpus = os.cpu_count() or 1
    res: dict = {"cpus": cpus, "keys": args.dkim_keys}
    # The single-core rate and generate_many alternate (rate, many, rate, many, ...) so that a
    # slow or busy stretch of the machine hits the limit and the measurement alike.
    rates, shares, runs = [], [], []
    for i in range(max(args.dkim_rate_runs, args.dkim_runs)):
        if i < args.dkim_rate_runs:
            rate, share = _single_core(args)
            rates.append(rate)
            shares.append(share)
            log(f"dkim: single core {rate:.1f} keys/s, CPU share {share:.2f} ({i + 1})")
        if i < args.dkim_runs and "generate_many_error" not in res:
            log(f"dkim: penguinctl.dkim.generate_many({args.dkim_keys}) ({i + 1}/{args.dkim_runs})")
            got = _generate_many(args)
            if "error" in got:
                res["generate_many_error"] = got["error"]
                log(f"  failed: {got['error'][-300:]}")
                continue
            runs.append(got)
            log(
                f"  {got['n']} keys in {got['seconds']:.1f} s = {got['n'] / got['seconds']:.1f}/s"
                f" (CPU {got['process_cpu_s']:.1f} s)"
            )
    res["single_core_keys_per_s"] = median(rates)
    res["single_core_runs"] = rates
    res["single_core_cpu_share"] = shares
    res["limit_keys_per_s"] = res["single_core_keys_per_s"] * cpus

    # For information: what all cores really do at once (SMT, thermal and memory limits show here).
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SINGLE_CORE, str(args.dkim_seconds)],
            stdout=subprocess.PIPE,
            text=True,
            env=bench_env(),
        )
        for _ in range(cpus)
    ]
    total, shares = 0.0, []
    for p in procs:
        count, dt, cpu = p.communicate()[0].split()
        total += int(count) / float(dt)
        shares.append(float(cpu) / float(dt))
    res["all_cores_measured_keys_per_s"] = total
    res["all_cores_cpu_share"] = shares
    log(f"dkim: {cpus} processes at once: {total:.1f} keys/s")

    res["generate_many_runs"] = runs
    if runs:
        sec = median([x["seconds"] for x in runs])
        res["generate_many_seconds"] = sec
        res["generate_many_keys_per_s"] = runs[0]["n"] / sec
        res["generate_many_ratio"] = res["generate_many_keys_per_s"] / res["limit_keys_per_s"]
        # keys per CPU-second: how much work each key costs, whatever the scheduling
        res["generate_many_keys_per_cpu_s"] = runs[0]["n"] / median(
            [x["process_cpu_s"] for x in runs]
        )
    return res


# ----------------------------------------------------------------------------- report


def apply_for_dkim(results: dict) -> tuple[int, dict]:
    """The fresh-state apply used as the end-to-end DKIM number: 1,000 domains, else smallest."""
    sizes = results.get("plan") or {}
    if not sizes:
        return 0, {}
    n = 1000 if "1000" in sizes else min(int(k) for k in sizes)
    return n, sizes[str(n)]["apply"]


def evaluate(results: dict, args) -> list[dict]:
    targets = []
    h = results.get("help", {}).get("commands", {})
    p, o = h.get("penguinctl --help", {}), h.get("octodns-sync --help", {})
    if "median_ms" in p and "median_ms" in o:
        ratio = p["median_ms"] / o["median_ms"]
        targets.append(
            {
                "target": "CLI start: penguinctl --help no slower than octodns-sync --help",
                "measured": f"{p['median_ms']:.0f} ms vs {o['median_ms']:.0f} ms = {ratio:.2f}x",
                "goal": "<= 1.00x",
                "ratio": ratio,
                "pass": ratio <= 1.0,
            }
        )
        fp = h.get("python -c pass", {}).get("median_ms")
        fo = h.get("python -c pass (anchors venv)", {}).get("median_ms")
        if fp and fo:
            adj = (p["median_ms"] - fp) / (o["median_ms"] - fo)
            targets.append(
                {
                    "target": "CLI start, each minus its own interpreter floor (info: removes the "
                    "environments' different site start-up)",
                    "measured": f"{p['median_ms'] - fp:.0f} ms vs "
                    f"{o['median_ms'] - fo:.0f} ms = {adj:.2f}x",
                    "goal": "<= 1.00x",
                    "ratio": adj,
                    "pass": adj <= 1.0,
                }
            )
        b, t = h.get(BASELINE, {}), h.get(THIS_TREE, {})
        if "cpu_ms" in b and "cpu_ms" in t:  # CPU time: wall time is noise on a shared machine
            ratio = t["cpu_ms"] / b["cpu_ms"]
            targets.append(
                {
                    "target": "CLI start: penguinctl --help no slower than the baseline tree "
                    "(--help-baseline, same interpreter; CPU time)",
                    "measured": f"{t['cpu_ms']:.0f} ms vs {b['cpu_ms']:.0f} ms CPU "
                    f"= {ratio:.2f}x (wall medians {t['median_ms']:.0f} / {b['median_ms']:.0f} ms)",
                    "goal": "<= 1.00x",
                    "ratio": ratio,
                    "pass": ratio <= 1.0,
                }
            )
    elif "help" in results:
        targets.append(
            {"target": "CLI start", "measured": "error", "goal": "<= 1.00x", "pass": False}
        )

    sizes = results.get("plan", {})
    if sizes:
        plan_n = 1000 if "1000" in sizes else min(int(k) for k in sizes)
        s = sizes[str(plan_n)]
        pw, ow = s["plan"].get("median_wall_s"), s["octodns"].get("median_wall_s")
        if pw and ow:
            ratio = pw / ow
            targets.append(
                {
                    "target": f"plan, {plan_n:,} domains, populated state: faster than octoDNS",
                    "measured": f"{pw:.2f} s vs {ow:.2f} s = {ratio:.2f}x",
                    "goal": "< 1.00x",
                    "ratio": ratio,
                    "pass": ratio < 1.0,
                }
            )
        else:
            targets.append(
                {
                    "target": f"plan, {plan_n:,} domains: faster than octoDNS",
                    "measured": "error",
                    "goal": "< 1.00x",
                    "pass": False,
                }
            )
        big = max(int(k) for k in sizes)
        b = sizes[str(big)]
        rss = b["plan"].get("max_rss_mib")
        if big >= 10000:
            targets.append(
                {
                    "target": f"plan, {big:,} domains: peak memory under 1 GB",
                    "measured": f"{rss:.0f} MiB" if rss else "error",
                    "goal": "< 1024 MiB",
                    "pass": bool(rss) and rss < 1024,
                }
            )
        a = b["apply"].get("median_rss_mib")
        if big >= 10000 and a:
            targets.append(
                {
                    "target": f"apply, {big:,} domains on fresh state: peak memory (info)",
                    "measured": f"{a:.0f} MiB",
                    "goal": "< 1024 MiB",
                    "pass": a < 1024,
                }
            )
    d = results.get("dkim")
    if d:
        lim = d["limit_keys_per_s"]
        r = d.get("generate_many_ratio")
        targets.append(
            {
                "target": f"DKIM: generate_many({d['keys']}) vs machine limit",
                "measured": (
                    f"{d['generate_many_keys_per_s']:.1f}/s vs {lim:.1f}/s = {r:.2f}x"
                    if r
                    else "error"
                ),
                "goal": ">= 0.80x",
                "ratio": r,
                "pass": bool(r) and r >= 0.8,
            }
        )
        an, ap = apply_for_dkim(results)
        if ap.get("keys_per_s"):
            r2 = ap["keys_per_s"] / lim
            targets.append(
                {
                    "target": f"DKIM: full `apply` of {an:,} domains, fresh state "
                    "(also writes zone files and state)",
                    "measured": f"{ap['keys_per_s']:.1f}/s vs {lim:.1f}/s = {r2:.2f}x",
                    "goal": ">= 0.80x",
                    "ratio": r2,
                    "pass": r2 >= 0.8,
                }
            )
    targets += (results.get("dns") or {}).get("targets", [])
    return targets


def markdown(results: dict) -> str:
    m, v = results["machine"], results["versions"]
    lines = [
        f"## penguinctl benchmarks — {results['date']}{' (quick)' if results['quick'] else ''}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, {m['platform']}; "
        f"Python {m['python']}. penguinctl {v.get('penguinctl')} (`{v['penguinctl_cmd']}`), "
        f"octoDNS {v.get('octodns')}, ansible-core {v.get('ansible-core')}, "
        f"cryptography {v.get('cryptography')}.",
        "",
    ]
    loads = results.get("load_at_start") or {}
    if loads:
        lines += [
            "1-minute load average when each section started (other work on the machine): "
            + ", ".join(f"{k} {fmt(v)}" for k, v in loads.items())
            + ".",
            "",
        ]
    h = results.get("help")
    if h:
        lines += [
            f"### CLI start ({h['tool']}, median of {h['runs']} runs)",
            "",
            "| command | median | min | max | CPU (mean) | vs octodns-sync |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        base = h["commands"].get("octodns-sync --help", {}).get("median_ms")
        for name, c in h["commands"].items():
            if "error" in c:
                lines.append(f"| `{name}` | error: {c['error'][:80]} | | | | |")
                continue
            ratio = f"{c['median_ms'] / base:.2f}x" if base else "—"
            lines.append(
                f"| `{name}` | {c['median_ms']:.0f} ms | {c['min_ms']:.0f} ms | "
                f"{c['max_ms']:.0f} ms | {fmt(c.get('cpu_ms'), '.0f')} ms | {ratio} |"
            )
        lines.append("")
    plan = results.get("plan")
    if plan:
        lines += [
            "### Plan against a populated state (no changes expected)",
            "",
            "| domains | what | runs | median wall | median CPU | peak RSS "
            "| penguinctl / octoDNS |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for n, s in sorted(plan.items(), key=lambda kv: int(kv[0])):
            a, p, o = s["apply"], s["plan"], s["octodns"]
            nn = f"{int(n):,}"
            if a.get("error"):
                lines.append(f"| {nn} | penguinctl apply | | error: {a['error'][:120]} | | | |")
                continue
            lines.append(
                f"| {nn} | `penguinctl apply` (fresh state, untimed setup) | "
                f"{len(a['runs'])} | {fmt(a.get('median_wall_s'), '.1f')} s | "
                f"{fmt(a.get('median_cpu_s'), '.1f')} s | "
                f"{fmt(a.get('median_rss_mib'), '.0f')} MiB | |"
            )
            ratio = (
                p["median_wall_s"] / o["median_wall_s"]
                if p.get("median_wall_s") and o.get("median_wall_s")
                else None
            )
            note = " (error)" if p.get("error") else (" (changes!)" if p.get("warning") else "")
            lines.append(
                f"| {nn} | `penguinctl plan`{note} | {len(p['runs'])} | "
                f"{fmt(p.get('median_wall_s'))} s | {fmt(p.get('median_cpu_s'))} s | "
                f"{fmt(p.get('max_rss_mib'), '.0f')} MiB | {fmt(ratio, '.2f')}x |"
            )
            note = " (error)" if o.get("error") else (" (changes!)" if o.get("warning") else "")
            lines.append(
                f"| {nn} | `octodns-sync` dry run{note} | {len(o['runs'])} | "
                f"{fmt(o.get('median_wall_s'))} s | {fmt(o.get('median_cpu_s'))} s | "
                f"{fmt(o.get('max_rss_mib'), '.0f')} MiB | |"
            )
        lines.append("")
        for s in plan.values():
            recs = s["octodns"].get("records")
            if recs:
                kinds = ", ".join(f"{v:,} {k}" for k, v in recs["records"].items())
                lines.append(
                    f"- octoDNS input built from penguinctl's {recs['zones']:,} zone files: "
                    f"{kinds}."
                )
        lines.append("")
    d = results.get("dkim")
    if d:
        lines += [
            "### DKIM RSA-2048 key generation",
            "",
            "| measure | keys/s | x limit |",
            "|---|---:|---:|",
            f"| one core, `cryptography` (median of {len(d['single_core_runs'])}) | "
            f"{d['single_core_keys_per_s']:.1f} | |",
            f"| machine limit = one core x {d['cpus']} | {d['limit_keys_per_s']:.1f} | 1.00x |",
            f"| {d['cpus']} processes at once (measured, info) | "
            f"{d['all_cores_measured_keys_per_s']:.1f} | "
            f"{d['all_cores_measured_keys_per_s'] / d['limit_keys_per_s']:.2f}x |",
        ]
        if d.get("generate_many_keys_per_s"):
            lines.append(
                f"| `penguinctl.dkim.generate_many({d['keys']})` "
                f"({d['generate_many_seconds']:.1f} s) | {d['generate_many_keys_per_s']:.1f} | "
                f"{d['generate_many_ratio']:.2f}x |"
            )
            if d.get("generate_many_keys_per_cpu_s"):
                lines.append(
                    f"| (info) `generate_many` keys per CPU-second, vs one core's keys/s "
                    f"| {d['generate_many_keys_per_cpu_s']:.1f} | "
                    f"{d['generate_many_keys_per_cpu_s'] / d['single_core_keys_per_s']:.2f}x |"
                )
        elif d.get("generate_many_error"):
            lines.append(f"| `generate_many({d['keys']})` | error | |")
        an, ap = apply_for_dkim(results)
        if ap.get("keys_per_s"):
            lines.append(
                f"| `penguinctl apply`, {an:,} domains, fresh state ({ap['median_wall_s']:.1f} s; "
                f"also zone files + state) | {ap['keys_per_s']:.1f} | "
                f"{ap['keys_per_s'] / d['limit_keys_per_s']:.2f}x |"
            )
        lines.append("")
    if results.get("dns"):
        import dns_rfc2136

        if "summary" in results["dns"]:
            lines.append(dns_rfc2136.markdown(results["dns"]))
        if results["dns"].get("error"):
            lines += [f"RFC 2136 benchmark error: {results['dns']['error'][:300]}", ""]
    lines += [
        "### Targets (product spec section 7)",
        "",
        "| target | measured | goal | result |",
        "|---|---|---|---|",
    ]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['goal']} | {verdict(t['pass'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="penguinctl benchmarks against octoDNS / ansible / "
        "the machine's RSA limit (see bench/README.md)"
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smaller N (plan: 200 domains, DKIM: 100 keys), fewer runs",
    )
    ap.add_argument(
        "--only", default="help,plan,dkim,dns", help="comma list of: help, plan, dkim, dns"
    )
    ap.add_argument("--sizes", help="plan sizes, comma separated (default 1000,10000)")
    ap.add_argument(
        "--runs", type=int, help="plan runs per tool per size (default 5 at <=1k, 3 above)"
    )
    ap.add_argument(
        "--apply-runs",
        type=int,
        default=3,
        help="fresh-state applies at <=1,000 domains (one above)",
    )
    ap.add_argument("--help-runs", type=int, default=30, help="runs per --help command")
    ap.add_argument(
        "--help-baseline",
        metavar="DIR",
        help="also time `--help` of the penguinctl source tree in DIR (e.g. main) in the same run",
    )
    ap.add_argument(
        "--help-rounds", type=int, default=3, help="rounds the --help runs are split in"
    )
    ap.add_argument("--dkim-keys", type=int, default=1000)
    ap.add_argument("--dkim-runs", type=int, default=3, help="generate_many runs")
    ap.add_argument(
        "--dkim-seconds",
        type=float,
        default=10.0,
        help="duration of each single-core rate measurement",
    )
    ap.add_argument("--dkim-rate-runs", type=int, default=3)
    ap.add_argument(
        "--dns-zones", type=int, default=200, help="RFC 2136 benchmark: zones (6 RRsets each)"
    )
    ap.add_argument("--dns-runs", type=int, default=5, help="RFC 2136 benchmark: timed rounds")
    ap.add_argument("--dns-warmup", type=int, default=1, help="RFC 2136 benchmark: untimed rounds")
    ap.add_argument(
        "--octodns-config",
        choices=("dynamic", "explicit"),
        default="dynamic",
        help="octoDNS zones: dynamic '*' (listed by the source) or every zone listed",
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=300,
        help="before each section, wait up to this many seconds for the load to drop",
    )
    ap.add_argument("--idle-load", type=float, default=1.0, help="1-minute load counted as idle")
    ap.add_argument("--no-hyperfine", action="store_true", help="use the subprocess loop")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    ap.add_argument("--workdir", type=Path, help="keep inputs here (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="do not delete generated inputs")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results/<date>.json)")
    args = ap.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if args.quick:
        sizes = [200]
        args.help_runs = min(args.help_runs, 10)
        args.apply_runs = 1
        args.runs = args.runs or 3
        args.dkim_keys = 100 if args.dkim_keys == 1000 else args.dkim_keys
        args.dkim_runs = 1
        args.dkim_seconds = min(args.dkim_seconds, 4.0)
        args.dkim_rate_runs = 1
        args.dns_runs = min(args.dns_runs, 3)
        args.dns_warmup = 0
    else:
        sizes = [1000, 10000]
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    args.help_runs = max(args.help_runs, 10)

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
        args.keep = True
    else:
        tmp = Path(tempfile.mkdtemp(prefix="penguinctl-bench-"))

    now = datetime.now(UTC)
    results: dict = {
        "date": now.strftime("%Y-%m-%d"),
        "started": now.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    log(f"work dir {tmp}; penguinctl = {' '.join(penguinctl_cmd())}")
    try:
        if "help" in only:
            log("CLI start")
            note_load(results, "help", args)
            results["help"] = bench_help(args, tmp)
        if "dkim" in only:
            note_load(results, "dkim", args)
            results["dkim"] = bench_dkim(args, tmp)
        if "plan" in only:
            results["plan"] = {}
            for n in sizes:
                note_load(results, f"plan-{n}", args)
                results["plan"][str(n)] = bench_size(args, tmp, n)
        if "dns" in only:
            import dns_rfc2136  # bench/dns_rfc2136.py: RFC 2136 publish into a local BIND

            log("RFC 2136 publish into BIND")
            note_load(results, "dns", args)
            results["dns"] = dns_rfc2136.bench(
                argparse.Namespace(
                    zones=args.dns_zones,
                    runs=args.dns_runs,
                    warmup=args.dns_warmup,
                    timeout=args.timeout,
                    keep=args.keep,
                ),
                tmp,
            )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets"] = evaluate(results, args)
    text = markdown(results)
    print(text)
    out = args.out or RESULTS / f"{results['date']}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
