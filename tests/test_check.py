"""`penguinctl check` against real parts on loopback: DNSBL zones, PTR/A and the domain's records
served by BIND; aiosmtpd with STARTTLS and implicit TLS and an IMAPS greeter with test
certificates (one expiring in 3 days, one in 20); MailU containers and disk over real sshd with
a `docker` shim; backup freshness from the state store. History, campaign pausing, the signed
webhook and the exit code are checked from the CLI's JSON."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import dns.query
import dns.update
import pytest
import sqlalchemy as sa
from bind import BindServer
from clitools import run_inprocess
from fakes.loopback import LoopbackHttpDouble
from fakes.state_rows import record_resources, static_server
from sshd import SshServer, keygen
from standardwebhooks import Webhook as StandardWebhook
from tls import ImapsGreeter, make_ca, make_cert, smtp_server

from penguinctl import clock
from penguinctl.health import dnsbl

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

DOMAIN = "acme-mail.example"
OTHER = "other.example"
MX1 = f"mx1.{DOMAIN}"

PS_JSON = json.dumps(
    [
        {"Service": "front", "State": "running", "Health": ""},
        {"Service": "admin", "State": "running", "Health": "healthy"},
        {"Service": "smtp", "State": "running", "Health": "healthy"},
        {"Service": "antispam", "State": "exited", "Health": ""},
    ]
)
DOCKER_SHIM = """#!/bin/sh
d=$(dirname "$0")
printf '%s\\n' "$*" >> "$d/docker.log"
case "$*" in *" ps "*) cat "$d/ps.json";; esac
"""
# `df` answers from df.out when a test wrote one (to set the use at a threshold), else is df
DF_SHIM = """#!/bin/sh
d=$(dirname "$0")
if [ -f "$d/df.out" ]; then cat "$d/df.out"; else exec {real} "$@"; fi
"""


def df_output(used: int, root: str) -> str:
    """What `df -P -k ROOT` prints for a disk ``used`` percent full."""
    size = 1_000_000
    taken = size * used // 100
    return (
        "Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
        f"/dev/vda1          {size} {taken} {size - taken}      {used}% {root}\n"
    )


def disk_status(used: int) -> str:
    """The facts file's thresholds: warn over 80 %, fail over 90 %."""
    return "fail" if used > 90 else "warn" if used > 80 else "ok"


class Webhook(LoopbackHttpDouble):
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.server.fake.requests.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler)


def _update(bind: BindServer, zone: str, records: list[tuple[str, str, str]]) -> None:
    upd = dns.update.UpdateMessage(zone, keyring=bind.keyring())
    for name, rtype, value in records:
        upd.add(name, 300, rtype, value)
    resp = dns.query.tcp(upd, bind.host, timeout=5, port=bind.port)
    assert resp.rcode() == 0


@pytest.fixture
def world(tmp_path, monkeypatch, capsys):
    zones = ["zen.test", "dbl.test", DOMAIN, "127.in-addr.arpa"]
    priv, pub = keygen(tmp_path / "id_ed25519")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "docker").write_text(DOCKER_SHIM)
    (shim / "docker").chmod(0o755)
    (shim / "ps.json").write_text(PS_JSON)
    (shim / "df").write_text(DF_SHIM.format(real=shutil.which("df")))
    (shim / "df").chmod(0o755)
    certs = tmp_path / "certs"
    ca = make_ca(certs)
    good = make_cert(ca, certs, [MX1, f"mx2.{OTHER}"], 90, "good")
    soon = make_cert(ca, certs, [MX1, f"mx2.{OTHER}"], 3, "soon")
    later = make_cert(ca, certs, [MX1, f"mx2.{OTHER}"], 20, "later")
    servers = []
    bind = BindServer(tmp_path / "bind", zones)
    sshd = SshServer(tmp_path / "sshd", "127.0.0.8", authorized_keys=[pub], path_prefix=shim)
    hook = Webhook()
    with bind, sshd, hook:
        try:
            s25 = smtp_server(good, MX1)
            servers.append(s25)
            s465 = smtp_server(soon, MX1, implicit=True)
            servers.append(s465)
            imap = ImapsGreeter(later)
            # 127.0.0.1 is listed on zen.test, 127.0.0.9 is not; acme-mail.example on dbl.test
            _update(bind, "zen.test", [("1.0.0.127", "A", "127.0.0.2"),
                                       ("1.0.0.127", "TXT", '"listed for testing"')])  # fmt: skip
            _update(bind, "dbl.test", [(DOMAIN, "A", "127.0.1.2")])
            _update(bind, DOMAIN, [("mx1", "A", "127.0.0.1"), ("@", "MX", f"10 {MX1}.")])
            _update(bind, "127.in-addr.arpa", [("1.0.0", "PTR", f"{MX1}.")])
            url = f"sqlite:///{tmp_path / 'state.db'}"
            monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
            monkeypatch.setenv("PENGUINCTL_STATE", url)
            mx1 = static_server(sshd.address, sshd.port, MX1)
            mx1["ips"] = ["127.0.0.1"]
            mx2 = {"provider": "external", "hostname": f"mx2.{OTHER}", "ips": ["127.0.0.9"],
                   "external": {"ips": ["127.0.0.9"]}}  # fmt: skip
            record_resources(
                url,
                [
                    ("tenant", "acme", "acme", {}),
                    ("server", "acme", "mx1", mx1),
                    ("server", "acme", "mx2", mx2),
                    ("dnsprovider", "acme", "bind",
                     {"type": "rfc2136", "server": "127.0.0.1", "port": bind.port}),
                    ("domain", "acme", DOMAIN, {"server": "mx1", "dns": "bind"}),
                    ("domain", "acme", OTHER, {"server": "mx2", "dns": "bind"}),
                    ("dnsrecord", "acme", f"{DOMAIN}/@/MX",
                     {"zone": DOMAIN, "name": "@", "type": "MX", "ttl": 300,
                      "values": [f"10 {MX1}."]}),
                    ("dnsrecord", "acme", f"{DOMAIN}/_dmarc/TXT",
                     {"zone": DOMAIN, "name": "_dmarc", "type": "TXT", "ttl": 300,
                      "values": ["v=DMARC1; p=none"]}),
                ],
            )  # fmt: skip
            from penguinctl.state.db import make_engine

            engine = make_engine(url)
            now = clock.now()
            with engine.begin() as conn:
                for tenant, name, sender in (
                    ("acme", "q4", f"john@{DOMAIN}"),
                    ("acme", "other", f"sara@{OTHER}"),
                ):
                    conn.execute(
                        sa.text(
                            "INSERT INTO campaigns (tenant, name, status, spec, spec_hash, "
                            "created_at, updated_at) VALUES (:t, :n, 'active', :s, 'x', :c, :c)"
                        ),
                        {"t": tenant, "n": name, "s": json.dumps({"senders": [sender]}), "c": now},
                    )
                conn.execute(
                    sa.text(
                        "INSERT INTO backup_runs (tenant, server, operation, status, repository,"
                        " actor, stats, started_at, finished_at) VALUES ('acme', 'mx1', 'backup',"
                        " 'ok', '/r', 't', '{}', :s, :f)"
                    ),
                    {"s": now - timedelta(hours=31), "f": now - timedelta(hours=30)},
                )
            engine.dispose()
            from penguinctl.providers.secrets.keystore import KeystoreBackend
            from penguinctl.settings import load_settings

            s = load_settings()
            ks = KeystoreBackend(
                s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key
            )
            ks.put("tenants/acme/servers/mx1/ssh", {"private_key": priv})
            monkeypatch.setenv("PENGUINCTL_WEBHOOK_SECRET", "hook-secret-for-tests")
            ns = f"127.0.0.1:{bind.port}"
            args = [
                "--resolver", ns, "--nameserver", ns, "--ip-list", "zen.test",
                "--domain-list", "dbl.test", "--connect", "127.0.0.1",
                "--port", f"25={s25.port}", "--port", f"587={s25.port}",
                "--port", f"465={s465.port}", "--port", f"993={imap.port}",
                "--ca-file", str(ca.cert), "--timeout", "3", "--mailu-root", str(tmp_path),
            ]  # fmt: skip

            def run(*a):
                return run_inprocess(capsys, "check", *a, *args)

            run.hook = hook
            run.url = url
            run.shim = shim
            run.root = str(tmp_path)
            run.capsys = capsys
            yield run
            imap.stop()
        finally:
            for srv in servers:
                srv.stop()


def _by(results, target, check, subject=None):
    hits = [r for r in results if r["target"] == target and r["check"] == check]
    if subject is not None:
        hits = [r for r in hits if r["subject"] == subject]
    assert len(hits) == 1, (target, check, hits)
    return hits[0]


def test_check_all(world):
    res = world("--all", "--notify", world.hook.url, "--notify-allow-private", "-o", "json")
    assert res.code == 5, res.err
    data = res.json()
    results = data["results"]
    assert data["ok"] is False and data["status"] == "fail", [
        r for r in results if r["status"] == "error"
    ]

    # DNSBL: the listed IP and domain fail (critical), the others are clean
    listed = _by(results, "mx1", "dnsbl:zen.test", "127.0.0.1")
    assert (
        listed["status"] == "fail"
        and listed["critical"]
        and "listed for testing" in listed["detail"]
    )
    assert _by(results, "mx2", "dnsbl:zen.test", "127.0.0.9")["status"] == "ok"
    assert _by(results, DOMAIN, "dnsbl:dbl.test")["status"] == "fail"
    assert _by(results, OTHER, "dnsbl:dbl.test")["status"] == "ok"

    # FCrDNS: mx1's IP has PTR -> mx1 -> 127.0.0.1; mx2's IP has no PTR
    assert _by(results, "mx1", "fcrdns", "127.0.0.1")["status"] == "ok"
    assert _by(results, "mx2", "fcrdns", "127.0.0.9")["status"] == "fail"

    # SMTP / TLS and certificate expiry
    assert _by(results, "mx1", "smtp:25")["status"] == "ok"
    assert "STARTTLS" in _by(results, "mx1", "smtp:587")["detail"]
    assert _by(results, "mx1", "cert:25")["status"] == "ok"
    assert _by(results, "mx1", "smtps:465")["status"] == "ok"
    assert _by(results, "mx1", "cert:465")["status"] == "fail"  # 3 days left
    assert _by(results, "mx1", "cert:993")["status"] == "warn"  # 20 days left
    assert _by(results, "mx1", "imaps:993")["status"] == "ok"
    assert _by(results, "mx2", "smtp:25")["status"] == "warn"  # banner names mx1, not mx2

    # DNS records as `dns verify` sees them: MX published, DMARC missing
    assert _by(results, DOMAIN, "dns:MX")["status"] == "ok"
    assert _by(results, DOMAIN, "dns:DMARC")["status"] == "fail"

    # over SSH: antispam exited; disk read; backup 30 h old fails; mx2 (external) has none
    containers = _by(results, "mx1", "containers")
    assert containers["status"] == "fail" and "antispam" in containers["detail"]
    disk = _by(results, "mx1", "disk")  # the real df of the MailU root
    used = disk["data"]["used_percent"]
    assert disk["detail"] == f"{used}% used on {disk['data']['mount']}"
    assert disk["status"] == disk_status(used)
    assert _by(results, "mx1", "backup")["status"] == "fail"
    offsite = _by(results, "mx1", "backup:offsite")  # backed up to /r: on the server itself
    assert offsite["status"] == "fail" and "/r" in offsite["detail"]
    assert not [r for r in results if r["target"] == "mx2" and r["check"] == "containers"]

    # the campaign sending from the listed domain/IP is paused, the other not
    assert [p["campaign"] for p in data["paused_campaigns"]] == ["q4"]
    from penguinctl.state.db import make_engine

    engine = make_engine(world.url)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT name, status FROM campaigns")).all())
        reason = conn.execute(
            sa.text("SELECT paused_reason FROM campaigns WHERE name = 'q4'")
        ).scalar()
        stored = conn.execute(
            sa.text("SELECT count(*) FROM check_results WHERE run_id = :r"), {"r": data["run_id"]}
        ).scalar()
        actions = [r[0] for r in conn.execute(sa.text("SELECT action FROM audit_events"))]
    engine.dispose()
    assert rows == {"q4": "paused", "other": "active"}
    assert reason.startswith("check: ")
    assert stored == len(results)
    assert "campaign.paused" in actions and "check.run" in actions

    # --notify: each event this run emitted was POSTed at once, signed both ways
    assert data["notified"]["delivered"] == data["notified"]["events"] == len(world.hook.requests)
    sent = []
    for headers, body in world.hook.requests:
        ts = headers["X-Penguinctl-Timestamp"]
        want = hmac.new(b"hook-secret-for-tests", ts.encode() + b"." + body, hashlib.sha256)
        assert headers["X-Penguinctl-Signature"] == "sha256=" + want.hexdigest()
        # the Standard Webhooks signature, with the same secret as whsec_ + base64(secret)
        whsec = "whsec_" + base64.b64encode(b"hook-secret-for-tests").decode()
        when = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        assert StandardWebhook(whsec).sign(headers["webhook-id"], when, body) in (
            headers["webhook-signature"].split()
        )
        event = json.loads(body)
        assert event["id"] == headers["webhook-id"]
        sent.append(event)
    assert {"check.failed", "blocklist.listed", "campaign.paused"} <= {e["type"] for e in sent}
    listed = [e["data"] for e in sent if e["type"] == "blocklist.listed"]
    assert {(d["target"], d["list"], d["listed"]) for d in listed} >= {
        ("mx1", "zen.test", "127.0.0.1")
    }
    # a second run with nothing changed notifies nothing: events are transitions
    again = world("--all", "--notify", world.hook.url, "--notify-allow-private", "-o", "json")
    assert again.json()["notified"]["events"] == 0
    assert len(world.hook.requests) == len(sent)
    history = run_inprocess(
        world.capsys, "check", "history", "mx1", "--problems", "--check", "dnsbl:*", "-o", "json"
    )
    assert history.code == 0, history.err
    assert {(r["check"], r["status"]) for r in history.json()} == {("dnsbl:zen.test", "fail")}


def test_check_one_clean_target_exits_zero(world):
    res = world(OTHER, "--skip", "dns", "-o", "json")
    assert res.code == 0, res.out + res.err
    data = res.json()
    assert [r["check"] for r in data["results"]] == ["dnsbl:dbl.test"]
    text = world(OTHER, "--skip", "dns")
    assert text.code == 0 and "ok: 1 ok" in text.out


def test_usage(world):
    assert world().code == 2
    assert world("nope.example").code == 2
    assert world("--all", "--skip", "bogus").code == 2


def test_query_names():
    assert dnsbl.query_name("192.0.2.7", "zen.spamhaus.org") == "7.2.0.192.zen.spamhaus.org."
    assert dnsbl.query_name("2001:db8::1", "zen.x").startswith("1.0.0.0.0.0.0.0")
    assert dnsbl.query_name("Example.COM.", "dbl.spamhaus.org") == "example.com.dbl.spamhaus.org."


def test_check_text_table(world):
    res = world("mx1", "--skip", "remote", "--skip", "backup", "--no-pause")
    assert res.code == 5
    for word in ("target", "check", "status", "dnsbl:zen.test", "cert:465", "LISTED"):
        assert word in res.out
    # the listed IP and the certificate expiring in 3 days, and nothing else
    data = world("mx1", "--skip", "remote", "--skip", "backup", "--no-pause", "-o", "json").json()
    failed = sorted((r["check"], r["subject"]) for r in data["results"] if r["status"] == "fail")
    assert [c for c, _ in failed] == ["cert:465", "dnsbl:zen.test"], failed
    assert "error: 2 check(s) failed; first: " in res.err


def test_disk_thresholds_at_their_edges(world):
    """warn over 80 %, fail over 90 % (the facts file), read over SSH from `df -P -k`."""
    args = ("mx1", "--skip", "dnsbl", "--skip", "fcrdns", "--skip", "tls", "--skip", "backup")
    seen = []
    for used in (0, 80, 81, 90, 91, 100):
        (world.shim / "df.out").write_text(df_output(used, world.root))
        res = world(*args, "--no-pause", "-o", "json")
        disk = _by(res.json()["results"], "mx1", "disk")
        assert disk["detail"] == f"{used}% used on {world.root}"
        seen.append((used, disk["status"]))
    assert seen == [(0, "ok"), (80, "ok"), (81, "warn"), (90, "warn"), (91, "fail"), (100, "fail")]
