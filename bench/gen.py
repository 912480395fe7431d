"""Generate the benchmark inputs (run by hand; never by CI or the test suite).

Two sub-commands:

  python bench/gen.py spec --domains N --out DIR
      DIR/spec.yaml: a penguinctl agency spec with one tenant, one external server with one IPv4,
      one zonefile DnsProvider and N Domains with one mailbox each. It is the very same shape as
      the test suite's ``tests/clitools.py::agency_spec`` (imported from there).

  python bench/gen.py octodns --zones-dir PENGUINCTL_HOME/zones --out DIR
      An octoDNS configuration doing the same work as `penguinctl plan` against a populated
      state: YamlProvider "desired" (source: the records) -> YamlProvider "populated" (target:
      already holds the same records), so `octodns-sync` (a dry run) plans no changes. The record
      values are taken from the zone files penguinctl wrote when it applied the spec (nothing is
      invented here): every record except the apex SOA/NS, i.e. MX, SPF TXT, DKIM TXT (2048-bit
      key) and DMARC TXT for the agency spec. TXT strings are joined into one value and ';' is
      escaped as '\\;' as octoDNS's YAML expects. Writes DIR/config.yaml (dynamic '*' zone, zones
      listed by the source provider), DIR/config-explicit.yaml (every zone listed; same work),
      DIR/desired/<zone>.yaml, DIR/populated/<zone>.yaml and DIR/summary.json (zone and record
      counts).

Needs PyYAML and dnspython, both dependencies of penguinctl, so it runs in the main environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZONE_SUFFIXES = (".zone", ".db", ".txt")
# Record types penguinctl may publish in a sending domain's zone, and how octoDNS spells them.
SUPPORTED = ("A", "AAAA", "CNAME", "MX", "TXT")


# --------------------------------------------------------------------------- penguinctl spec


def agency_spec(n: int) -> str:
    """The test suite's agency spec (one tenant, one external server, one zonefile provider)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from clitools import agency_spec as _agency_spec
    finally:
        sys.path.pop(0)
    return _agency_spec(n, mailboxes=1)


def write_spec(n: int, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "spec.yaml"
    path.write_text(agency_spec(n))
    return path


# --------------------------------------------------------------------------- octoDNS config


def _zone_files(zones_dir: Path) -> list[tuple[str, Path]]:
    """(zone name without trailing dot, file) for each zone file penguinctl wrote."""
    found = []
    for path in sorted(zones_dir.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.name
        for suffix in ZONE_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        else:
            continue
        found.append((name.rstrip("."), path))
    return found


def _octodns_value(rdtype: str, rdata) -> object:
    if rdtype == "MX":
        return {"exchange": rdata.exchange.to_text(), "preference": rdata.preference}
    if rdtype == "TXT":
        text = b"".join(rdata.strings).decode("ascii")
        return text.replace("\\", "\\\\").replace(";", "\\;")
    if rdtype == "CNAME":
        return rdata.target.to_text()
    return rdata.to_text()  # A, AAAA


def zone_to_octodns(zone_name: str, path: Path) -> tuple[dict, Counter]:
    """Parse one RFC 1035 zone file into octoDNS's YAML structure {name: record | [records]}."""
    import dns.name
    import dns.rdatatype
    import dns.zone

    origin = dns.name.from_text(zone_name)
    zone = dns.zone.from_file(str(path), origin=origin, relativize=True, check_origin=False)
    records: dict[str, list[dict]] = {}
    kinds: Counter = Counter()
    for name, node in zone.nodes.items():
        rel = "" if name == dns.name.empty else name.to_text()
        for rdataset in node.rdatasets:
            rdtype = dns.rdatatype.to_text(rdataset.rdtype)
            if rel == "" and rdtype in ("SOA", "NS"):
                continue  # managed by the DNS host, not part of the per-domain record set
            if rdtype not in SUPPORTED:
                raise SystemExit(f"{path}: record type {rdtype} is not handled by bench/gen.py")
            values = sorted(
                (_octodns_value(rdtype, rd) for rd in rdataset),
                key=lambda v: json.dumps(v, sort_keys=True),
            )
            rec: dict = {"ttl": rdataset.ttl, "type": rdtype}
            if rdtype == "CNAME":
                rec["value"] = values[0]
            else:
                rec["values"] = values
            records.setdefault(rel, []).append(rec)
            if rdtype == "TXT":
                first = b"".join(next(iter(rdataset)).strings)
                sub = (
                    "SPF"
                    if first.startswith(b"v=spf1")
                    else "DKIM"
                    if first.startswith(b"v=DKIM1")
                    else "DMARC"
                    if first.startswith(b"v=DMARC1")
                    else "other"
                )
                kinds[f"TXT({sub})"] += 1
            else:
                kinds[rdtype] += 1
    out = {}
    for rel in sorted(records):  # octoDNS enforces key order when loading
        recs = sorted(records[rel], key=lambda r: r["type"])
        out[rel] = recs[0] if len(recs) == 1 else recs
    return out, kinds


def write_octodns(zones_dir: Path, out: Path) -> dict:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    zones = _zone_files(zones_dir)
    if not zones:
        raise SystemExit(f"no zone files in {zones_dir}: apply the spec with penguinctl first")
    desired = out / "desired"
    populated = out / "populated"
    for d in (desired, populated):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.yaml"):
            old.unlink()
    kinds: Counter = Counter()
    for zone_name, path in zones:
        data, k = zone_to_octodns(zone_name, path)
        kinds.update(k)
        text = "---\n" + yaml.dump(
            data, Dumper=dumper, default_flow_style=False, sort_keys=True, width=1 << 20
        )
        (desired / f"{zone_name}.yaml").write_text(text)
        (populated / f"{zone_name}.yaml").write_text(text)  # the populated target state

    def provider(directory: str) -> dict:
        return {
            "class": "octodns.provider.yaml.YamlProvider",
            "directory": f"./{directory}",
            "default_ttl": 3600,
            "enforce_order": True,
            "escaped_semicolons": True,
            # penguinctl does not manage apex NS either; without this octoDNS warns on every zone.
            "supports_root_ns": False,
        }

    base = {
        "providers": {"desired": provider("desired"), "populated": provider("populated")},
    }
    # octoDNS resolves relative provider directories against the working directory, so run.py
    # runs octodns-sync from DIR.
    dynamic = {**base, "zones": {"*": {"sources": ["desired"], "targets": ["populated"]}}}
    explicit = {
        **base,
        "zones": {
            f"{zone}.": {"sources": ["desired"], "targets": ["populated"]} for zone, _ in zones
        },
    }
    for name, cfg in (("config.yaml", dynamic), ("config-explicit.yaml", explicit)):
        (out / name).write_text(
            "---\n" + yaml.dump(cfg, Dumper=dumper, default_flow_style=False, sort_keys=False)
        )
    summary = {"zones": len(zones), "records": dict(sorted(kinds.items()))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_spec = sub.add_parser("spec", help="write a penguinctl agency spec with N domains")
    p_spec.add_argument("--domains", "-n", type=int, required=True)
    p_spec.add_argument("--out", type=Path, required=True, help="directory for spec.yaml")
    p_oct = sub.add_parser("octodns", help="write an octoDNS config from penguinctl's zone files")
    p_oct.add_argument(
        "--zones-dir",
        type=Path,
        required=True,
        help="the zonefile provider's directory (default <PENGUINCTL_HOME>/zones)",
    )
    p_oct.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.cmd == "spec":
        print(write_spec(args.domains, args.out))
    else:
        print(json.dumps(write_octodns(args.zones_dir, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
