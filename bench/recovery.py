"""Benchmark: disaster recovery (issue 23).

1. **Recovery time of the drill** (README "Disaster recovery"): the world of
   tests/test_recovery_drill.py (real sshd hosts with the recording docker shims, an SFTP backup
   host, the MailU API double, Dovecot for the IMAP check), a mail store of ``--mails`` messages
   of ``--size`` bytes, backed up, drilled, state + secrets escrowed; server and home lost. Timed:
   ``penguinctl recover`` + ``penguinctl server rebuild`` as whole CLI processes, fresh home to
   verified mail (also the rebuild's own figure, start to verified mail).
2. **restic restore throughput**: one snapshot of a ``--restore-mb`` MB mail store in a local
   repository; ``penguinctl backup restore SNAP --server mx1 --to DIR`` (the CLI, restic over SSH
   on the server) against a bare ``restic restore SNAP --target DIR`` of the same snapshot (the
   floor). Ratio = bare time / penguinctl time (1.0: no overhead).

Run as root (sshd): ``python bench/recovery.py [--mails 400 --size 20000] [--restore-mb 200]
[--runs 3]``. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))


class _Env:
    """monkeypatch.setenv for a process: the CLI subprocesses and this process's helpers."""

    def setenv(self, name: str, value: str) -> None:
        os.environ[name] = value


def _cli(*args):
    from clitools import run_subprocess

    return run_subprocess({}, *map(str, args), timeout=3600)


def drill(tmp: Path, mails: int, size: int) -> dict[str, float]:
    from recoverykit import mail_services, prepare, rebuild_args, start_world

    env = _Env()
    env.setenv("PENGUINCTL_HOME", str(tmp / "home"))
    env.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp / 'home' / 'state.db'}")
    with contextlib.ExitStack() as stack:
        w = start_world(tmp, stack)
        prep = prepare(_cli, w, env, recover=False, mails=(mails, size))
        t0 = time.perf_counter()
        rec = _cli("recover", "--state", prep.offsite / "state.db", "--secrets",
                   prep.offsite / "state.escrow", "--recovery-key", prep.key)  # fmt: skip
        assert rec.code == 0, rec.err
        t1 = time.perf_counter()
        smtp, imap = mail_services(tmp, stack)  # the new host's mail services (not timed)
        t2 = time.perf_counter()
        rb = _cli(*rebuild_args(w, smtp, imap), "-o", "json")
        assert rb.code == 0, rb.err + rb.out
        t3 = time.perf_counter()
        return {
            "recover_s": t1 - t0,
            "rebuild_s": t3 - t2,
            "total_s": (t1 - t0) + (t3 - t2),
            "rebuild_reported_s": rb.json()["recovery_seconds"],
        }


def restore_throughput(tmp: Path, megabytes: int, runs: int) -> dict[str, float]:
    from fakes.state_rows import record_resources, static_server
    from sshd import SshServer, keygen

    restic = shutil.which("restic")
    assert restic, "restic is not installed"
    priv, pub = keygen(tmp / "id")
    shim = tmp / "shim"
    shim.mkdir()
    (shim / "docker").write_text("#!/bin/sh\nexit 0\n")
    (shim / "docker").chmod(0o755)
    root = tmp / "mailu"
    rnd = random.Random(5)
    box = root / "mail" / "john@acme-mail.example" / "cur"
    box.mkdir(parents=True)
    for i in range(megabytes * 10):  # 100 KiB messages
        (box / f"{i:06d}.M1P1.mx1:2,S").write_bytes(rnd.randbytes(100 * 1024))
    home = tmp / "home"
    os.environ["PENGUINCTL_HOME"] = str(home)
    os.environ["PENGUINCTL_STATE"] = f"sqlite:///{home / 'state.db'}"
    repo = tmp / "repo"
    with SshServer(tmp / "sshd", "127.0.0.44", authorized_keys=[pub], path_prefix=shim) as srv:
        server = static_server(srv.address, srv.port, "mx1.b.example")
        record_resources(os.environ["PENGUINCTL_STATE"], [("server", "", "mx1", server)])
        key = tmp / "k.json"
        import json

        key.write_text(json.dumps({"private_key": priv}))
        assert _cli("secrets", "put", "platform/servers/mx1/ssh", "-f", key).code == 0
        spec = tmp / "spec.yaml"
        spec.write_text(
            "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
            "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1}\nspec:\n"
            f"  provider: static\n  static: {{address: {srv.address}, ssh_port: {srv.port}}}\n"
            "  hostname: mx1.b.example\n  backup: p\n---\n"
            "apiVersion: penguinctl/v1\nkind: BackupPolicy\nmetadata: {name: p}\n"
            f"spec: {{schedule: '0 2 * * *', repository: '{repo}'}}\n"
        )
        run = _cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root, "--no-quiesce",
                   "-o", "json")  # fmt: skip
        assert run.code == 0, run.err
        snap = run.json()["servers"][0]["snapshot"]
        password = _cli("secrets", "get", "platform/backups/mx1", "--reveal", "-o", "json")
        pw = json.loads(password.out)
        pw = pw.get("fields", pw).get("password")
        ours, bare, cli_ssh = [], [], []
        for i in range(runs):
            t = time.perf_counter()
            assert _cli("server", "exec", "true", "mx1").code == 0
            cli_ssh.append(time.perf_counter() - t)
            target = tmp / f"restore-pc-{i}"
            t = time.perf_counter()
            res = _cli("backup", "restore", snap, "--server", "mx1", "-f", spec, "--to", target)
            ours.append(time.perf_counter() - t)
            assert res.code == 0, res.err
            shutil.rmtree(target)
            target = tmp / f"restore-bare-{i}"
            t = time.perf_counter()
            subprocess.run([restic, "-r", str(repo), "restore", snap, "--target", str(target),
                            "--verify"], check=True, capture_output=True,
                           env={**os.environ, "RESTIC_PASSWORD": pw})  # fmt: skip
            bare.append(time.perf_counter() - t)
            shutil.rmtree(target)
    size = megabytes * 10 * 100 * 1024 / 1e6
    return {
        "mb": size,
        "penguinctl_s": statistics.median(ours),
        "bare_s": statistics.median(bare),
        "penguinctl_mb_s": size / statistics.median(ours),
        "bare_mb_s": size / statistics.median(bare),
        "cli_ssh_s": statistics.median(cli_ssh),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mails", type=int, default=400)
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--restore-mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="drill,restore")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if "drill" in only:
        rows = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="pc-drill-") as d:
                rows.append(drill(Path(d), args.mails, args.size))
            print(f"drill run {i + 1}: {rows[-1]}", file=sys.stderr)
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"\n| drill ({args.mails} mails x {args.size} B) | recover | rebuild | "
            "fresh home to verified mail | rebuild's own figure |\n|---|---|---|---|---|"
        )
        print(f"| median of {args.runs} | {med['recover_s']:.1f} s | {med['rebuild_s']:.1f} s | "
              f"{med['total_s']:.1f} s | {med['rebuild_reported_s']:.1f} s |")  # fmt: skip
    if "restore" in only:
        with tempfile.TemporaryDirectory(prefix="pc-restore-") as d:
            r = restore_throughput(Path(d), args.restore_mb, args.runs)
        print(f"\n| restic restore of {r['mb']:.0f} MB | time | throughput |\n|---|---|---|")
        print(
            f"| penguinctl backup restore --to | {r['penguinctl_s']:.2f} s | "
            f"{r['penguinctl_mb_s']:.0f} MB/s |"
        )
        print(f"| bare restic restore (floor) | {r['bare_s']:.2f} s | {r['bare_mb_s']:.0f} MB/s |")
        print(f"| (penguinctl server exec true: CLI + SSH session) | {r['cli_ssh_s']:.2f} s | |")
        print(f"\nratio (bare time / penguinctl time): {r['bare_s'] / r['penguinctl_s']:.2f}")


if __name__ == "__main__":
    main()
