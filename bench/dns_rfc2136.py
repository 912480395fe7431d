"""Benchmark: publish N zones x 6 RRsets into a real BIND by RFC 2136 (product spec, section 7).

Run by hand, never by CI or the test suite:

    bash bench/setup.sh                    # once: bench/.venv-octodns, BIND
    python bench/dns_rfc2136.py            # 200 zones, 5 interleaved rounds (~6 min on 2 cores,
                                           # after waiting up to --wait-idle s for a calm machine)
    python bench/dns_rfc2136.py --profile  # then one profiled penguinctl run of each kind
    python bench/dns_rfc2136.py --runs 3 --zones 50 --keep --workdir /tmp/b   # smaller, keep files
    python bench/run.py --only dns         # the same, as a section of the benchmark runner

Three tools publish the same 6 RRsets per zone (MX, SPF TXT, DKIM TXT with a 2048-bit key, DMARC
TXT, MTA-STS TXT, TLS-RPT TXT) into the same BIND, each once into empty zones ("first run") and
once more when everything is already there ("no change"):

  (a) a whole `python -m penguinctl apply -f spec.yaml --yes` process, DnsProvider `rfc2136` with
      TSIG (secret by `env:` reference), fresh state, DKIM keys already in the keystore (see
      bench/README.md for why); also, for information, the same apply on a populated state after
      the zones were emptied behind its back (only the DNS work: refresh, 1,200 RRset updates);
  (b) `octodns-sync --config-file=config.yaml --doit` from bench/.venv-octodns: YamlProvider
      source -> octodns_bind.Rfc2136Provider target (TSIG, AXFR to read the zones);
  (c) the floor: a bare in-process dnspython loop, one TSIG-signed UPDATE per zone carrying all 6
      RRsets over TCP (timed inside its process, imports and data loading excluded); its no-change
      run re-sends the same updates, and, for information, reads every zone by AXFR and compares.

The bench starts its own `named` on 127.0.0.1 (only; a free high port) with N dynamic primary
zones (tests/bind.py's BindServer), empties the zones between runs, checks by AXFR after every run
that BIND holds exactly the expected records (and nothing else), interleaves the tools (the order
rotates each round) and reports medians. Prints a Markdown table and writes
bench/results/<date>-dns-rfc2136.json. Uses bench/harness.py's process helpers (wall time by
perf_counter, CPU and peak RSS of the child by wait4).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
import gen  # noqa: E402  (bench/gen.py: zone file -> octoDNS YAML)
import harness as runner  # noqa: E402  (bench/harness.py: run(), log(), bench_env(), ...)

OCTODNS_BIN = BENCH / ".venv-octodns" / "bin"
RESULTS = BENCH / "results"
TODAY = "2026-11-23"  # PENGUINCTL_TODAY: fixes the DKIM selector (pm202611) for every run
SECRET_ENV = "PENGUINCTL_BENCH_TSIG_SECRET"  # the TSIG secret reaches every tool by environment
TENANT = "agency"
PROVIDER = "bind"
RECORDS_PER_ZONE = 6
TOOLS = ("penguinctl", "octodns", "dnspython")
XFR_WORKERS = 8  # zones read/emptied in parallel by the bench itself (untimed)


def zone_name(i: int) -> str:
    return f"client{i:05d}.example"


# ----------------------------------------------------------------------------- inputs


def spec_text(n: int, dns_spec: str) -> str:
    """The penguinctl spec: one tenant, one external mail server (outside every zone, so no A
    record), one DnsProvider and n Domains without mailboxes. Each Domain yields exactly 6 RRsets:
    @ MX, @ TXT (SPF), pm202611._domainkey TXT (DKIM, RSA-2048), _dmarc TXT, _mta-sts TXT
    (MTA-STS without a policy host: no CNAME) and _smtp._tls TXT (TLS-RPT)."""
    docs = [
        f"apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {{name: {TENANT}}}\n"
        "spec: {plan: business}\n",
        "apiVersion: penguinctl/v1\nkind: Server\n"
        f"metadata: {{name: shared-mx, tenant: {TENANT}}}\n"
        "spec:\n  provider: external\n  external: {ips: [192.0.2.10]}\n"
        "  hostname: mx.agency-mail.example\n",
        "apiVersion: penguinctl/v1\nkind: DnsProvider\n"
        f"metadata: {{name: {PROVIDER}, tenant: {TENANT}}}\n" + dns_spec,
    ]
    for i in range(n):
        docs.append(
            "apiVersion: penguinctl/v1\nkind: Domain\n"
            f"metadata: {{name: {zone_name(i)}, tenant: {TENANT}}}\n"
            f"spec:\n  server: shared-mx\n  dns: {PROVIDER}\n"
            "  dmarc: {policy: none, rua: dmarc@agency-mail.example}\n"
            "  mta_sts: {mode: testing}\n"
            "  tls_rpt: {rua: tls-reports@agency-mail.example}\n"
        )
    return "---\n".join(docs)


def rfc2136_dns_spec(port: int, key_name: str) -> str:
    return (
        "spec:\n  type: rfc2136\n  server: 127.0.0.1\n"
        f"  port: {port}\n"
        f'  tsig: {{name: {key_name}, algorithm: hmac-sha256, secret: "env:{SECRET_ENV}"}}\n'
    )


def zonefile_dns_spec(directory: Path) -> str:
    return f'spec:\n  type: zonefile\n  directory: "{directory}"\n'


def pc_env(home: Path, secret: str) -> dict[str, str]:
    return runner.bench_env(
        PENGUINCTL_HOME=str(home), PENGUINCTL_TODAY=TODAY, **{SECRET_ENV: secret}
    )


def read_zone_file(zone: str, path: Path) -> dict[tuple[str, str], tuple[int, list[str]]]:
    """{(relative name, type): (ttl, sorted values)} of a zone file, apex SOA/NS left out; TXT
    values are the joined character-strings."""
    import dns.name
    import dns.zone

    z = dns.zone.from_file(
        str(path), origin=dns.name.from_text(zone), relativize=True, check_origin=False
    )
    return rrsets_of(z, z.origin)


def rrsets_of(z, origin) -> dict[tuple[str, str], tuple[int, list[str]]]:
    """{(name relative to origin, type): (ttl, sorted values)} of a dnspython zone."""
    import dns.name
    import dns.rdatatype

    out = {}
    for name, node in z.nodes.items():
        rel = name.relativize(origin) if name.is_absolute() else name
        text = "@" if rel == dns.name.empty else rel.to_text().lower()
        for rds in node.rdatasets:
            rtype = dns.rdatatype.to_text(rds.rdtype)
            if text == "@" and rtype in ("SOA", "NS"):
                continue
            if rtype == "TXT":
                values = [b"".join(rd.strings).decode() for rd in rds]
            else:
                values = [rd.to_text() for rd in rds]
            out[(text, rtype)] = (rds.ttl, sorted(values))
    return out


def pregenerate(args, work: Path, n: int) -> tuple[Path, Path, dict, dict]:
    """Untimed setup: one `penguinctl apply` against a zonefile provider generates the n DKIM keys
    into a keystore (the template copied into every fresh-state run) and writes the zone files the
    other tools' inputs are built from, so all three publish exactly penguinctl's records.
    Returns (template home, zones dir, expected records by zone, setup timing)."""
    home = work / "keys-home"
    zones = work / "pregen-zones"
    home.mkdir()
    spec = work / "spec-zonefile.yaml"
    spec.write_text(spec_text(n, zonefile_dns_spec(zones)))
    runner.log(f"setup: penguinctl apply against a zonefile provider ({n} DKIM keys)")
    r = runner.run(
        [sys.executable, "-m", "penguinctl", "apply", "-f", str(spec), "--yes"],
        env=pc_env(home, "unused"),
        cwd=REPO,
        timeout=args.timeout,
        out_path=work / "pregen.out",
    )
    if r.rc != 0:
        sys.exit(f"setup apply failed (exit {r.rc}): {r.tail()}")
    runner.log(f"  {r.wall:.1f} s (CPU {r.cpu:.1f} s) — key generation, not part of the bench")
    expected = {}
    for name, path in gen._zone_files(zones):
        recs = read_zone_file(name, path)
        if len(recs) != RECORDS_PER_ZONE:
            sys.exit(
                f"{path}: penguinctl wrote {len(recs)} RRsets, not {RECORDS_PER_ZONE}: "
                f"{sorted(recs)} — adjust spec_text()"
            )
        expected[name] = recs
    if len(expected) != n:
        sys.exit(f"expected {n} zone files in {zones}, found {len(expected)}")
    return home, zones, expected, {"wall_s": r.wall, "cpu_s": r.cpu, "rss_mib": r.rss_mib}


def write_octodns(out: Path, zones_dir: Path, server, zones: list[str]) -> Path:
    """octoDNS config: YamlProvider `desired` (the same records, built from penguinctl's zone files
    by bench/gen.py) -> octodns_bind.Rfc2136Provider `bind` (TSIG key from the environment)."""
    import yaml

    desired = out / "desired"
    desired.mkdir(parents=True, exist_ok=True)
    for zone in zones:
        data, _ = gen.zone_to_octodns(zone, zones_dir / f"{zone}.zone")
        (desired / f"{zone}.yaml").write_text(
            "---\n" + yaml.safe_dump(data, default_flow_style=False, sort_keys=True, width=1 << 20)
        )
    config = {
        "providers": {
            "desired": {
                "class": "octodns.provider.yaml.YamlProvider",
                "directory": "./desired",
                "default_ttl": 3600,
                "enforce_order": True,
                "escaped_semicolons": True,
            },
            PROVIDER: {
                "class": "octodns_bind.Rfc2136Provider",
                "host": "127.0.0.1",
                "port": server.port,
                "key_name": server.key_name,
                "key_secret": f"env/{SECRET_ENV}",
                "key_algorithm": "hmac-sha256",
            },
        },
        "zones": {f"{z}.": {"sources": ["desired"], "targets": [PROVIDER]} for z in zones},
    }
    path = out / "config.yaml"
    path.write_text("---\n" + yaml.safe_dump(config, default_flow_style=False, sort_keys=False))
    return path


def write_floor_data(path: Path, expected: dict) -> None:
    path.write_text(
        json.dumps(
            {
                zone: [[name, rtype, ttl, values] for (name, rtype), (ttl, values) in recs.items()]
                for zone, recs in expected.items()
            }
        )
    )


# ----------------------------------------------------------------------------- BIND helpers


def start_bind(work: Path, zones: list[str]):
    if not (shutil.which("named") or os.path.exists("/usr/sbin/named")):
        sys.exit("named (Debian bind9) is missing: run `bash bench/setup.sh` first")
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from bind import BindServer  # tests/bind.py: named on 127.0.0.1, TSIG, dynamic zones
    finally:
        sys.path.pop(0)
    server = BindServer(work / "named", zones)
    server.start()
    assert server.host == "127.0.0.1"
    return server


def axfr(server, zone: str) -> dict[tuple[str, str], tuple[int, list[str]]]:
    import dns.message
    import dns.name
    import dns.query
    import dns.rdatatype
    import dns.zone

    origin = dns.name.from_text(zone)
    query = dns.message.make_query(origin, dns.rdatatype.AXFR)
    query.use_tsig(server.keyring())
    target = dns.zone.Zone(origin, relativize=False)
    dns.query.inbound_xfr(server.host, target, query, port=server.port, timeout=10)
    return rrsets_of(target, origin)


def _pmap(fn, items):
    with ThreadPoolExecutor(max_workers=XFR_WORKERS) as pool:
        return list(pool.map(fn, items))


def empty_zones(server, zones: list[str]) -> int:
    """Delete every RRset but the apex SOA/NS of every zone (one UPDATE per zone); returns how
    many RRsets were deleted. Checked by a second AXFR."""
    import dns.query
    import dns.rcode
    import dns.update

    def one(zone: str) -> int:
        live = axfr(server, zone)
        if not live:
            return 0
        msg = dns.update.UpdateMessage(zone, keyring=server.keyring())
        for name, rtype in live:
            msg.delete(name, rtype)
        resp = dns.query.tcp(msg, server.host, port=server.port, timeout=10)
        if resp.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"emptying {zone}: {dns.rcode.to_text(resp.rcode())}")
        return len(live)

    deleted = sum(_pmap(one, zones))
    left = [
        z for z, live in zip(zones, _pmap(lambda z: axfr(server, z), zones), strict=True) if live
    ]
    if left:
        raise RuntimeError(f"zones not empty after reset: {left[:3]}")
    return deleted


def check_published(server, expected: dict) -> list[str]:
    """Every zone holds exactly the expected RRsets (names, types, TTLs, values; TXT strings
    joined) and nothing else but the apex SOA/NS. Returns the problems (empty: all good)."""
    zones = sorted(expected)
    problems = []
    for zone, live in zip(zones, _pmap(lambda z: axfr(server, z), zones), strict=True):
        want = expected[zone]
        if live != want:
            missing = sorted(set(want) - set(live))
            extra = sorted(set(live) - set(want))
            differ = sorted(k for k in set(want) & set(live) if want[k] != live[k])
            problems.append(f"{zone}: missing {missing} extra {extra} different {differ}")
    return problems


def soa_serials(server, zones: list[str]) -> dict[str, int]:
    import dns.message
    import dns.query

    def one(zone):
        resp = dns.query.tcp(
            dns.message.make_query(zone, "SOA"), server.host, port=server.port, timeout=10
        )
        return resp.answer[0][0].serial

    return dict(zip(zones, _pmap(one, zones), strict=True))


# ----------------------------------------------------------------------------- (c) the floor

FLOOR = r"""
import json, os, sys, time
import dns.message, dns.name, dns.query, dns.rcode, dns.rdata, dns.rdataclass, dns.rdatatype
import dns.rdtypes.ANY.TXT, dns.tsig, dns.update, dns.zone

data_file, host, port, key_name, mode = sys.argv[1:6]
port = int(port)
data = json.loads(open(data_file).read())
key = dns.tsig.Key(key_name, os.environ["PENGUINCTL_BENCH_TSIG_SECRET"], "hmac-sha256.")
IN = dns.rdataclass.IN

def rdatas(rtype, values, origin):
    rdtype = dns.rdatatype.from_text(rtype)
    out = []
    for v in values:
        if rtype == "TXT":  # ONE RR of 255-octet strings, as penguinctl publishes it
            b = v.encode()
            chunks = [b[i:i + 255] for i in range(0, len(b), 255)]
            out.append(dns.rdtypes.ANY.TXT.TXT(IN, rdtype, chunks))
        else:
            out.append(dns.rdata.from_text(IN, rdtype, v, origin=origin))
    return out

def update(zone, recs):
    msg = dns.update.UpdateMessage(zone, keyring=key)
    origin = dns.name.from_text(zone)
    for name, rtype, ttl, values in recs:
        msg.replace(name, ttl, *rdatas(rtype, values, origin))
    resp = dns.query.tcp(msg, host, port=port, timeout=10)
    if resp.rcode() != dns.rcode.NOERROR:
        sys.exit(f"{zone}: {dns.rcode.to_text(resp.rcode())}")

def live(zone):
    origin = dns.name.from_text(zone)
    query = dns.message.make_query(origin, "AXFR")
    query.use_tsig(key)
    z = dns.zone.Zone(origin, relativize=False)
    dns.query.inbound_xfr(host, z, query, port=port, timeout=10)
    out = {}
    for name, node in z.nodes.items():
        rel = name.relativize(origin).to_text()
        for rds in node.rdatasets:
            rtype = dns.rdatatype.to_text(rds.rdtype)
            if rel == "@" and rtype in ("SOA", "NS"):
                continue
            vals = [b"".join(r.strings).decode() if rtype == "TXT" else r.to_text() for r in rds]
            out[(rel, rtype)] = (rds.ttl, sorted(vals))
    return out

sent = 0
t0 = time.perf_counter()
for zone, recs in data.items():
    if mode == "check":  # read, compare, send only what differs
        want = {(n, t): (ttl, sorted(v)) for n, t, ttl, v in recs}
        if live(zone) == want:
            continue
    update(zone, recs)
    sent += 1
dt = time.perf_counter() - t0
print(json.dumps({"loop_s": dt, "updates": sent, "zones": len(data)}))
"""


# ----------------------------------------------------------------------------- measurements


def _record(r, **extra) -> dict:
    return {
        "wall_s": r.wall,
        "cpu_s": r.cpu,
        "rss_mib": r.rss_mib,
        "rc": r.rc,
        "load": runner.loadavg(),
        **extra,
    }


class Bench:
    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.n = args.zones
        self.zones = [zone_name(i) for i in range(self.n)]
        self.res: dict = {
            "zones": self.n,
            "records_per_zone": RECORDS_PER_ZONE,
            "runs": args.runs,
            "measurements": {},
            "verify": [],
        }
        # `python -m penguinctl` from the repository, as a user runs it from a checkout (cwd=REPO)
        self.pc = [sys.executable, "-m", "penguinctl"]

    # -- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        octo = OCTODNS_BIN / "octodns-sync"
        if not octo.exists():
            sys.exit(f"{octo} is missing: run `bash bench/setup.sh` first")
        self.keys_home, zones_dir, self.expected, self.res["setup_apply"] = pregenerate(
            self.args, self.work, self.n
        )
        sample = self.expected[self.zones[0]]
        self.res["rrsets_per_zone"] = sorted(f"{name} {rtype}" for name, rtype in sample)
        runner.log(f"setup: starting named with {self.n} dynamic zones on 127.0.0.1")
        t0 = time.perf_counter()
        self.server = start_bind(self.work, self.zones)
        self.res["bind"] = {
            "port": self.server.port,
            "startup_s": time.perf_counter() - t0,
            "version": subprocess.run(
                [shutil.which("named") or "/usr/sbin/named", "-v"], capture_output=True, text=True
            ).stdout.strip(),
        }
        runner.log(
            f"  named on 127.0.0.1:{self.server.port} ({self.res['bind']['startup_s']:.1f} s)"
        )
        self.secret = self.server.secret
        self.spec = self.work / "spec.yaml"
        self.spec.write_text(
            spec_text(self.n, rfc2136_dns_spec(self.server.port, self.server.key_name))
        )
        self.res["versions"] = {
            "octodns_venv": subprocess.run(
                [
                    str(OCTODNS_BIN / "python"),
                    "-c",
                    "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) "
                    "for p in ('octodns', 'octodns-bind', 'dnspython')}))",
                ],
                capture_output=True,
                text=True,
            ).stdout.strip(),
        }
        with contextlib.suppress(ValueError):
            self.res["versions"]["octodns_venv"] = json.loads(self.res["versions"]["octodns_venv"])
        import dns.version

        self.res["versions"]["dnspython"] = dns.version.version
        self.res["git"] = git_state()
        self.octo_dir = self.work / "octodns"
        self.octo_cfg = write_octodns(self.octo_dir, zones_dir, self.server, self.zones)
        self.floor_data = self.work / "floor.json"
        write_floor_data(self.floor_data, self.expected)

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()

    # -- one timed run ---------------------------------------------------------------------
    def fresh_home(self, tag: str) -> Path:
        """A penguinctl home with no state but the pre-generated keystore and its key."""
        home = self.work / f"home-{tag}"
        if home.exists():
            shutil.rmtree(home)
        home.mkdir()
        shutil.copytree(self.keys_home / "keystore", home / "keystore")
        shutil.copy2(self.keys_home / "master.key", home / "master.key")
        return home

    def bind_cpu(self) -> float:
        """CPU seconds (user + system) named has used so far: the server-side work of a run."""
        try:
            stat = Path(f"/proc/{self.server.proc.pid}/stat").read_text()
        except (OSError, AttributeError):
            return 0.0
        fields = stat[stat.rfind(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def penguinctl(self, home: Path, what: str) -> dict:
        b0 = self.bind_cpu()
        r = runner.run(
            [*self.pc, "apply", "-f", str(self.spec), "--yes"],
            env=pc_env(home, self.secret),
            cwd=REPO,
            timeout=self.args.timeout,
            out_path=self.work / f"penguinctl-{what}.out",
        )
        bind_cpu = self.bind_cpu() - b0
        no_changes = "No changes." in r.out
        if r.rc != 0:
            raise RuntimeError(f"penguinctl apply ({what}) exit {r.rc}: {r.tail()}")
        if what == "nochange" and not no_changes:
            raise RuntimeError("penguinctl apply planned changes on a no-change run")
        if what != "nochange" and no_changes:
            raise RuntimeError(f"penguinctl apply ({what}) did nothing")
        return _record(r, no_changes=no_changes, bind_cpu_s=bind_cpu)

    def octodns(self, what: str) -> dict:
        b0 = self.bind_cpu()
        r = runner.run(
            [str(OCTODNS_BIN / "octodns-sync"), f"--config-file={self.octo_cfg}", "--doit"],
            env=runner.bench_env(**{SECRET_ENV: self.secret}),
            cwd=self.octo_dir,
            timeout=self.args.timeout,
            out_path=self.work / f"octodns-{what}.out",
        )
        bind_cpu = self.bind_cpu() - b0
        text = r.out + r.err
        no_changes = "No changes were planned" in text
        if r.rc != 0:
            raise RuntimeError(f"octodns-sync ({what}) exit {r.rc}: {r.tail(1500)}")
        if what == "nochange" and not no_changes:
            raise RuntimeError(f"octodns-sync planned changes on a no-change run: {r.tail(1500)}")
        if what == "first" and no_changes:
            raise RuntimeError("octodns-sync planned nothing on empty zones")
        return _record(r, no_changes=no_changes, bind_cpu_s=bind_cpu)

    def floor(self, mode: str) -> dict:
        b0 = self.bind_cpu()
        r = runner.run(
            [
                sys.executable,
                "-c",
                FLOOR,
                str(self.floor_data),
                self.server.host,
                str(self.server.port),
                self.server.key_name,
                mode,
            ],
            env=runner.bench_env(**{SECRET_ENV: self.secret}),
            cwd=REPO,
            timeout=self.args.timeout,
        )
        bind_cpu = self.bind_cpu() - b0
        if r.rc != 0:
            raise RuntimeError(f"dnspython loop ({mode}) exit {r.rc}: {r.tail()}")
        out = json.loads(r.out.strip().splitlines()[-1])
        rec = _record(r, bind_cpu_s=bind_cpu, **out)
        rec["process_wall_s"], rec["wall_s"] = rec["wall_s"], out["loop_s"]
        return rec

    # -- bookkeeping -----------------------------------------------------------------------
    def add(self, key: str, rec: dict, timed: bool) -> None:
        if timed:
            self.res["measurements"].setdefault(key, []).append(rec)
        extra = ""
        if "process_wall_s" in rec:
            extra = f" (process {rec['process_wall_s']:.2f} s, {rec['updates']} updates)"
        runner.log(
            f"  {key}: {rec['wall_s']:.2f} s{extra}, CPU {rec['cpu_s']:.2f} s, "
            f"{rec['rss_mib']:.0f} MiB{'' if timed else ' (warm-up)'}"
        )

    def verify(self, key: str, rnd: int) -> None:
        problems = check_published(self.server, self.expected)
        self.res["verify"].append({"after": key, "round": rnd, "ok": not problems})
        if problems:
            raise RuntimeError(
                f"after {key}: BIND does not hold the expected records in {len(problems)} "
                f"zone(s): {problems[:3]}"
            )

    def reset(self) -> None:
        empty_zones(self.server, self.zones)

    # -- one tool, one round: first run, no-change run (+ extras) -------------------------
    def tool_round(self, tool: str, rnd: int, timed: bool) -> None:
        tag = f"r{rnd}"
        self.reset()
        if tool == "penguinctl":
            home = self.fresh_home(tag)
            self.add("penguinctl/first", self.penguinctl(home, "first"), timed)
            self.verify("penguinctl/first", rnd)
            serials = soa_serials(self.server, self.zones)
            self.add("penguinctl/nochange", self.penguinctl(home, "nochange"), timed)
            self.verify("penguinctl/nochange", rnd)
            if soa_serials(self.server, self.zones) != serials:
                raise RuntimeError("a penguinctl no-change run changed zones (SOA serials moved)")
            # information: only the DNS part of an apply (state populated, zones emptied)
            if getattr(self.args, "republish", True):
                self.reset()
                self.add("penguinctl/republish", self.penguinctl(home, "republish"), timed)
                self.verify("penguinctl/republish", rnd)
            if not self.args.keep:
                shutil.rmtree(home, ignore_errors=True)
        elif tool == "octodns":
            self.add("octodns/first", self.octodns("first"), timed)
            self.verify("octodns/first", rnd)
            serials = soa_serials(self.server, self.zones)
            self.add("octodns/nochange", self.octodns("nochange"), timed)
            self.verify("octodns/nochange", rnd)
            if soa_serials(self.server, self.zones) != serials:
                raise RuntimeError("an octoDNS no-change run changed zones (SOA serials moved)")
        else:
            self.add("dnspython/first", self.floor("update"), timed)
            self.verify("dnspython/first", rnd)
            self.add("dnspython/nochange", self.floor("update"), timed)
            self.verify("dnspython/nochange", rnd)
            rec = self.floor("check")
            if rec["updates"]:
                raise RuntimeError(f"dnspython check found {rec['updates']} zones different")
            self.add("dnspython/check", rec, timed)

    def run(self) -> dict:
        self.setup()
        for w in range(self.args.warmup):
            runner.log(f"warm-up round {w + 1}/{self.args.warmup} (not recorded)")
            for tool in TOOLS:
                self.tool_round(tool, -1 - w, timed=False)
        for rnd in range(self.args.runs):
            k = rnd % len(TOOLS)
            order = TOOLS[k:] + TOOLS[:k]  # rotate so each tool takes each slot
            runner.log(f"round {rnd + 1}/{self.args.runs}: {', '.join(order)}")
            for tool in order:
                self.tool_round(tool, rnd, timed=True)
        # ------------------------------------------------------------------------------------
        # PLACEHOLDER — "verify 1,000 domains": `penguinctl dns verify DOMAIN...` (being added by
        # another engineer) checking 1,000 domains' published records against what penguinctl
        # expects. Not implemented here. To add it: start BIND with 1,000 zones (or reuse this
        # server with --zones 1000), publish them (any of the three tools above), then time
        #     [*self.pc, "dns", "verify", *self.zones]   (env=pc_env(home, self.secret))
        # against the floor `self.floor("check")` (AXFR + compare per zone), interleaved like
        # above, and store the runs under self.res["measurements"]["penguinctl/verify"].
        self.res["verify_1000"] = bench_verify_1000(self)
        # ------------------------------------------------------------------------------------
        self.summarise()
        if getattr(self.args, "profile", False):
            self.res["profile"] = self.profile()
        return self.res

    # -- profiling (--profile): where penguinctl's time goes -------------------------------
    def profile(self) -> dict:
        """One more penguinctl first / no-change / republish run each, under bench/stage_timer.py
        (wall time per engine stage) and, when installed, py-spy (sampling, all threads; top
        functions by inclusive samples). Not part of the medians."""
        pyspy = getattr(self.args, "py_spy", None) or shutil.which("py-spy")
        out: dict = {"py_spy": pyspy}
        home = self.fresh_home("profile")
        self.reset()
        for what in ("first", "nochange", "republish"):
            if what == "republish":
                self.reset()
            stages = self.work / f"stages-{what}.json"
            cmd = [sys.executable, str(BENCH / "stage_timer.py"), "--json", str(stages), "--"]
            cmd += ["apply", "-f", str(self.spec), "--yes"]
            raw = self.work / f"py-spy-{what}.raw"
            if pyspy:
                cmd = [pyspy, "record", "-r", "200", "-f", "raw", "-o", str(raw), "--", *cmd]
            runner.log(f"profile: penguinctl apply ({what}){' under py-spy' if pyspy else ''}")
            r = runner.run(cmd, env=pc_env(home, self.secret), cwd=REPO, timeout=self.args.timeout)
            if r.rc != 0:
                out[what] = {"error": f"exit {r.rc}: {r.tail()}"}
                continue
            self.verify(f"profile/{what}", -1)
            entry = {"wall_s": r.wall, "stage_timer": r.err[r.err.find("stage timer:") :].strip()}
            with contextlib.suppress(OSError, ValueError):
                entry["stages"] = json.loads(stages.read_text())
            if pyspy and raw.exists():
                entry["py_spy_top"] = py_spy_top(raw)
            out[what] = entry
            print(f"\n--- profile: penguinctl apply ({what}), {r.wall:.2f} s", file=sys.stderr)
            print(entry["stage_timer"], file=sys.stderr)
            for line in entry.get("py_spy_top", []):
                print("  " + line, file=sys.stderr)
        return out

    def summarise(self) -> None:
        summary = {}
        for key, runs in self.res["measurements"].items():
            walls = [x["wall_s"] for x in runs]
            summary[key] = {
                "runs": len(runs),
                "median_wall_s": runner.median(walls),
                "min_wall_s": min(walls),
                "max_wall_s": max(walls),
                "median_cpu_s": runner.median([x["cpu_s"] for x in runs]),
                "max_rss_mib": max(x["rss_mib"] for x in runs),
                "median_bind_cpu_s": runner.median([x.get("bind_cpu_s", 0.0) for x in runs]),
            }
            if "process_wall_s" in runs[0]:
                summary[key]["median_process_wall_s"] = runner.median(
                    [x["process_wall_s"] for x in runs]
                )
        self.res["summary"] = summary
        for phase in ("first", "nochange"):
            p = summary.get(f"penguinctl/{phase}", {}).get("median_wall_s")
            o = summary.get(f"octodns/{phase}", {}).get("median_wall_s")
            f = summary.get(f"dnspython/{phase}", {}).get("median_wall_s")
            self.res.setdefault("ratios", {})[phase] = {
                "penguinctl_vs_octodns": p / o if p and o else None,
                "penguinctl_vs_floor": p / f if p and f else None,
                "octodns_vs_floor": o / f if o and f else None,
            }


def py_spy_top(raw: Path, n: int = 25) -> list[str]:
    """Top functions by inclusive share of py-spy samples (all threads, on-CPU), from the "raw"
    (collapsed stacks) format: a sample counts once per function on its stack."""
    import re
    from collections import Counter

    incl: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        k = int(count)
        total += k
        frames = {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}
        for f in frames:
            incl[f] += k
    keep = re.compile(r"penguinctl/|cryptography|sqlalchemy/orm/session|dns/query|rich/|yaml/")
    rows = [(f, k) for f, k in incl.most_common() if keep.search(f)]
    return [
        f"{100 * k / total:5.1f}% {re.sub(r'/[^ ]*/site-packages/', '', f)}" for f, k in rows[:n]
    ]


def git_state() -> dict:
    """The commit measured and penguinctl files differing from it (read-only git commands: other
    engineers commit in this working tree while benchmarks run)."""

    def out(*cmd: str) -> str:
        r = subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=REPO)
        return r.stdout.strip() if r.returncode == 0 else ""

    dirty = out("diff", "--name-only", "HEAD", "--", "penguinctl")
    return {"head": out("rev-parse", "--short", "HEAD"), "penguinctl_uncommitted": dirty.split()}


def bench_verify_1000(bench: Bench) -> dict:
    """PLACEHOLDER for the "verify 1,000 domains" measurement (`penguinctl dns verify`): not
    implemented yet — see the marked block in Bench.run()."""
    return {"status": "not implemented (placeholder for `penguinctl dns verify`)"}


# ----------------------------------------------------------------------------- report

LABELS = {
    "penguinctl/first": "`penguinctl apply` (fresh state, keys in keystore)",
    "penguinctl/republish": "(info) `penguinctl apply`, state populated, zones emptied",
    "octodns/first": "`octodns-sync --doit` (octodns-bind Rfc2136Provider)",
    "dnspython/first": "dnspython loop, 1 UPDATE/zone (floor; loop only)",
    "penguinctl/nochange": "`penguinctl apply` (No changes.)",
    "octodns/nochange": "`octodns-sync --doit` (No changes were planned)",
    "dnspython/nochange": "dnspython loop re-sending the same UPDATEs (floor)",
    "dnspython/check": "(info) dnspython loop, AXFR + compare per zone, sends nothing",
}
PHASES = {
    "first": ("penguinctl/first", "octodns/first", "dnspython/first", "penguinctl/republish"),
    "nochange": (
        "penguinctl/nochange",
        "octodns/nochange",
        "dnspython/nochange",
        "dnspython/check",
    ),
}


GOAL = 0.8  # issue 24: at most 0.8x octoDNS, first and no-change run, 200 and 1,000 zones


def targets(res: dict) -> list[dict]:
    out = []
    for phase, label in (("first", "first run"), ("nochange", "no-change run")):
        s = res.get("summary", {})
        p = s.get(f"penguinctl/{phase}", {}).get("median_wall_s")
        o = s.get(f"octodns/{phase}", {}).get("median_wall_s")
        ratio = p / o if p and o else None
        out.append(
            {
                "target": f"DNS: {res['zones']} zones x {RECORDS_PER_ZONE} RRsets by RFC 2136, "
                f"{label}: whole `penguinctl apply` vs `octodns-sync --doit`",
                "measured": f"{p:.2f} s vs {o:.2f} s = {ratio:.2f}x" if ratio else "error",
                "goal": f"<= {GOAL:.2f}x",
                "ratio": ratio,
                "pass": ratio is not None and ratio <= GOAL,
            }
        )
    return out


def markdown(res: dict) -> str:
    s = res.get("summary", {})
    lines = [
        f"### RFC 2136 publish into BIND: {res['zones']} zones x {RECORDS_PER_ZONE} RRsets "
        f"(median of {res['runs']}, tools interleaved)",
        "",
        "| run | tool | median wall | min | max | median CPU | BIND CPU | peak RSS "
        "| vs octodns-sync "
        "| vs floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase, keys in PHASES.items():
        o = s.get(keys[1], {}).get("median_wall_s")
        f = s.get(keys[2], {}).get("median_wall_s")
        for key in keys:
            x = s.get(key)
            if not x:
                continue
            w = x["median_wall_s"]
            wall = f"{w:.2f} s"
            if "median_process_wall_s" in x:
                wall += f" (process {x['median_process_wall_s']:.2f} s)"
            lines.append(
                f"| {'first' if phase == 'first' else 'no change'} | {LABELS[key]} | {wall} | "
                f"{x['min_wall_s']:.2f} s | {x['max_wall_s']:.2f} s | {x['median_cpu_s']:.2f} s | "
                f"{x['median_bind_cpu_s']:.2f} s | "
                f"{x['max_rss_mib']:.0f} MiB | {runner.fmt(w / o if o else None)}x | "
                f"{runner.fmt(w / f if f else None, '.1f')}x |"
            )
    ok = all(v["ok"] for v in res.get("verify", []))
    lines += [
        "",
        f"RRsets per zone: {', '.join(res.get('rrsets_per_zone', []))}. "
        f"{len(res.get('verify', []))} AXFR checks of all {res['zones']} zones after the runs: "
        f"{'all held exactly the expected records' if ok else 'FAILURES (see JSON)'}. "
        f"BIND: {res.get('bind', {}).get('version', '?')} on 127.0.0.1:"
        f"{res.get('bind', {}).get('port', '?')}. penguinctl at commit "
        f"{res.get('git', {}).get('head', '?')}"
        f"{' + uncommitted changes' if res.get('git', {}).get('penguinctl_uncommitted') else ''}"
        ". Setup (untimed): DKIM keys generated by one "
        f"`penguinctl apply` against a zonefile provider in "
        f"{res.get('setup_apply', {}).get('wall_s', 0):.1f} s.",
        "",
    ]
    return "\n".join(lines)


def bench(args, tmp: Path) -> dict:
    """Entry point for bench/run.py (section `dns`)."""
    work = tmp / "dns-rfc2136"
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(args, work)
    try:
        res = b.run()
    except (RuntimeError, OSError) as exc:
        runner.log(f"dns: failed: {exc}")
        b.res["error"] = str(exc)[:2000]
        res = b.res
    finally:
        b.close()
    res["targets"] = targets(res) if "summary" in res else []
    return res


def add_arguments(ap: argparse.ArgumentParser, *, prefix: str = "") -> None:
    ap.add_argument(f"--{prefix}zones", dest="zones", type=int, default=200)
    ap.add_argument(
        f"--{prefix}sizes",
        dest="sizes",
        help="comma-separated zone counts measured one after the other in this run, each "
        "against its own BIND (e.g. 200,1000); default: --zones",
    )
    ap.add_argument(
        f"--{prefix}no-republish",
        dest="republish",
        action="store_false",
        help="skip the informational republish run (state populated, zones emptied)",
    )
    ap.add_argument(
        f"--{prefix}runs", dest="runs", type=int, default=5, help="timed rounds (median)"
    )
    ap.add_argument(
        f"--{prefix}warmup", dest="warmup", type=int, default=1, help="untimed rounds first"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per process")
    ap.add_argument("--wait-idle", type=float, default=300)
    ap.add_argument("--idle-load", type=float, default=1.0)
    ap.add_argument("--workdir", type=Path, help="keep inputs here (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="do not delete generated inputs")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results/)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="after the timed rounds, profile one penguinctl run of each kind "
        "(bench/stage_timer.py, and py-spy when installed)",
    )
    ap.add_argument("--py-spy", dest="py_spy", help="path of py-spy (default: on PATH)")
    args = ap.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="dns-", dir=args.workdir))
        args.keep = True
    else:
        tmp = Path(tempfile.mkdtemp(prefix="penguinctl-bench-dns-"))
    now = datetime.now(UTC)
    results: dict = {
        "date": now.strftime("%Y-%m-%d"),
        "started": now.isoformat(timespec="seconds"),
        "machine": runner.machine(),
        "versions": {k: v for k, v in runner.versions().items() if k in ("python", "penguinctl")},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    runner.log(f"work dir {tmp}; penguinctl = {' '.join(runner.penguinctl_cmd())}")
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [args.zones]
    results["dns_sizes"] = {}
    try:
        runner.note_load(results, "dns", args)
        for n in sizes:
            sized = argparse.Namespace(**{**vars(args), "zones": n})
            runner.log(f"=== {n} zones ===")
            results["dns_sizes"][str(n)] = bench(sized, tmp / f"z{n}")
        results["dns"] = results["dns_sizes"][str(sizes[0])]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = "".join(markdown(r) + "\n" for r in results["dns_sizes"].values())
    text += "\n| target | measured | goal | result |\n|---|---|---|---|\n"
    errors = [r["error"] for r in results["dns_sizes"].values() if r.get("error")]
    for r in results["dns_sizes"].values():
        for t in r["targets"]:
            verdict = runner.verdict(t["pass"])
            text += f"| {t['target']} | {t['measured']} | {t['goal']} | {verdict} |\n"
    for error in errors:
        text += f"\nERROR: {error}\n"
    print(text)
    out = args.out or RESULTS / f"{results['date']}-dns-rfc2136.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    runner.log(f"wrote {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
