"""Benchmark: `penguinctl dns verify --all` of 1,000 domains against a real BIND.

    python bench/dns_verify.py [--zones 1000] [--runs 3]

Setup (untimed): one `penguinctl apply` against a zonefile provider generates the DKIM keys
(bench/dns_rfc2136.py's `pregenerate`), a BIND on 127.0.0.1 serves the 1,000 zones plus the
mail host's zone and the sending IP's reverse zone, and a `penguinctl apply` publishes every
record into it by RFC 2136. Then, interleaved, median of --runs:

- `penguinctl dns verify --all` (whole process): per domain 6 records asked of the zone's
  authoritative server and compared, SPF/DMARC/DKIM checks, the DKIM key compared with the
  keystore's, the mail host's address and forward-confirmed reverse DNS of the sending IP;
- the floor: a bare in-process dnspython loop (32 threads) asking the same 6,000 questions and
  comparing the answers with the expected values, nothing else.

Writes bench/results/<date>-dns-verify.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dns_rfc2136 as base
import harness as runner

REPO = Path(__file__).resolve().parent.parent
MAIL_ZONE = "agency-mail.example"  # the shared mail host mx.agency-mail.example lives here
REVERSE = "2.0.192.in-addr.arpa"
IP = "192.0.2.10"


def floor(server, expected: dict) -> dict:
    """Ask every expected RRset of every zone once (UDP, 32 threads) and compare."""
    import dns.message
    import dns.query
    import dns.rdatatype

    questions = [
        (zone, name, rtype, values)
        for zone, recs in expected.items()
        for (name, rtype), (_ttl, values) in recs.items()
    ]

    def one(q) -> bool:
        zone, name, rtype, values = q
        fqdn = f"{zone}." if name == "@" else f"{name}.{zone}."
        msg = dns.message.make_query(fqdn, rtype)
        resp = dns.query.udp(msg, server.host, port=server.port, timeout=5)
        if resp.flags & dns.flags.TC:
            resp = dns.query.tcp(msg, server.host, port=server.port, timeout=5)
        got = []
        for rrset in resp.answer:
            for rd in rrset:
                if rd.rdtype == dns.rdatatype.TXT:
                    got.append(b"".join(rd.strings).decode())
                else:
                    got.append(rd.to_text())
        return sorted(got) == values

    import dns.flags

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        ok = sum(pool.map(one, questions))
    wall = time.perf_counter() - t0
    if ok != len(questions):
        raise RuntimeError(f"floor: {len(questions) - ok} of {len(questions)} answers differ")
    return {"wall_s": wall, "questions": len(questions)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pc-bench-verify-"))
    server = None
    try:
        zones = [base.zone_name(i) for i in range(args.zones)]
        keys_home, _zones_dir, expected, setup = base.pregenerate(args, work, args.zones)
        runner.log(f"setup: named with {len(zones) + 2} zones on 127.0.0.1")
        server = base.start_bind(work, [*zones, MAIL_ZONE, REVERSE])
        import dns.query
        import dns.update

        for zone, name, rtype, value in (
            (MAIL_ZONE, "mx", "A", IP),
            (REVERSE, "10", "PTR", f"mx.{MAIL_ZONE}."),
        ):
            upd = dns.update.UpdateMessage(zone, keyring=server.keyring())
            upd.replace(name, 300, rtype, value)
            dns.query.tcp(upd, server.host, port=server.port, timeout=10)
        home = work / "home"
        home.mkdir()
        shutil.copytree(keys_home / "keystore", home / "keystore")
        shutil.copy2(keys_home / "master.key", home / "master.key")
        spec = work / "spec.yaml"
        spec.write_text(
            base.spec_text(args.zones, base.rfc2136_dns_spec(server.port, server.key_name))
        )
        env = base.pc_env(home, server.secret)
        runner.log("setup: penguinctl apply publishes every record by RFC 2136")
        r = runner.run(
            [sys.executable, "-m", "penguinctl", "apply", "-f", str(spec), "--yes"],
            env=env,
            cwd=REPO,
            timeout=args.timeout,
            out_path=work / "apply.out",
        )
        if r.rc != 0:
            sys.exit(f"setup apply failed: {r.tail()}")
        where = f"127.0.0.1:{server.port}"
        verify_cmd = [
            sys.executable, "-m", "penguinctl", "dns", "verify", "--all",
            "--resolver", where, "-o", "json",
        ]  # fmt: skip
        pc, fl = [], []
        for i in range(args.runs + 1):  # the first round warms caches and is not counted
            r = runner.run(verify_cmd, env=env, cwd=REPO, timeout=args.timeout, out_path=None)
            if r.rc != 0:
                raise RuntimeError(f"dns verify exit {r.rc}: {r.tail()}")
            report = json.loads(r.out)
            if not report["ok"] or len(report["domains"]) != args.zones:
                raise RuntimeError("dns verify did not find every domain ok")
            checks = sum(len(d["checks"]) for d in report["domains"])
            f = floor(server, expected)
            runner.log(
                f"  round {i}: penguinctl {r.wall:.2f} s ({checks} checks), "
                f"floor {f['wall_s']:.2f} s ({f['questions']} questions)"
            )
            if i:
                pc.append(r.wall)
                fl.append(f["wall_s"])
        res = {
            "zones": args.zones,
            "runs": args.runs,
            "penguinctl_wall_s": statistics.median(pc),
            "floor_wall_s": statistics.median(fl),
            "checks": checks,
            "questions": f["questions"],
            "setup": setup,
            "git": base.git_state(),
        }
        res["ratio_vs_floor"] = res["penguinctl_wall_s"] / res["floor_wall_s"]
        out = (
            args.out or REPO / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-dns-verify.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2))
        print(
            f"| `penguinctl dns verify --all`, {args.zones} domains ({checks} checks, "
            f"FCrDNS and DKIM keys included) | {res['penguinctl_wall_s']:.2f} s "
            f"({args.zones / res['penguinctl_wall_s']:.0f} domains/s) |\n"
            f"| bare dnspython loop, 32 threads, the same {f['questions']} questions (floor) | "
            f"{res['floor_wall_s']:.2f} s | ratio {res['ratio_vs_floor']:.1f}x |"
        )
        runner.log(f"wrote {out}")
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
