"""The disaster-recovery drill of the README, end to end with real parts: apply a tenant with a
static server (real sshd, MailU installed through the recording docker shims), mail delivered
into it, backups of server (SFTP to a backup host), state and secrets; the machine and the
server are lost; `recover` on a fresh home; `server rebuild` onto a second sshd. The mail tree
comes back byte-identical, DNS points at the new IP, mail signed with the restored DKIM key
verifies (dkimpy) against the published record, `plan` is empty."""

from __future__ import annotations

import contextlib

import dkim
import dns.zone
import pytest
from clitools import run_inprocess
from daemons import need_binary
from recoverykit import DOMAIN, NEW, mail_services, prepare, rebuild_args, start_world, tree_digest

# Not marked `clock`: its processes run at a fixed date (PENGUINCTL_TODAY / a clock file), which
# takes precedence over the shifted runs' PENGUINCTL_TIME_OFFSET: a shifted re-run repeats it.


def _zone(zones_dir):
    zone = dns.zone.from_file(str(zones_dir / f"{DOMAIN}.zone"), origin=DOMAIN,
                              relativize=False)  # fmt: skip

    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        rdataset = zone.get_rdataset(name, "TXT")
        return b"".join(rdataset[0].strings) if rdataset else None

    return zone, txt


@pytest.fixture
def world(tmp_path, monkeypatch):
    need_binary("restic", "restic")
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    with contextlib.ExitStack() as stack:
        yield start_world(tmp_path, stack), stack


def test_disaster_recovery_drill(tmp_path, monkeypatch, capsys, world):
    w, stack = world

    def cli(*args):
        return run_inprocess(capsys, *args)

    prep = prepare(cli, w, monkeypatch)  # runbook step 1 (`recover`) included
    smtp_port, imap_port = mail_services(tmp_path, stack)

    # runbook step 2: rebuild the server onto the new host
    rb = cli(*rebuild_args(w, smtp_port, imap_port), "-o", "json")
    assert rb.code == 0, rb.err + rb.out
    result = rb.json()
    assert result["recovery_seconds"] > 0 and result["snapshot"] == prep.snapshots[0]
    checks = [c["check"] for c in result["steps"]["verify"]["checks"]]
    assert checks == ["smtp", "imap", f"dkim:{DOMAIN}"]

    # the mail tree is back, byte for byte
    after = {k: v for k, v in tree_digest(w.root).items() if k in prep.before}
    assert after == prep.before
    # DNS: the A and SPF records name the new host
    zone, txt = _zone(tmp_path / "zones")
    assert [r.address for r in zone.get_rdataset(f"mail.{DOMAIN}.", "A")] == [NEW]
    spf = b"".join(zone.get_rdataset(f"{DOMAIN}.", "TXT")[0].strings).decode()
    assert f"ip4:{NEW}" in spf and "127.0.0.41" not in spf
    # mail signed with the key the new host's signer loads verifies against DNS
    (keyfile,) = (w.root / "dkim-sign").glob(f"{DOMAIN}.*.key")
    selector = keyfile.name.removeprefix(f"{DOMAIN}.").removesuffix(".key")
    msg = (f"From: john@{DOMAIN}\r\nTo: lead@example.net\r\nSubject: back\r\n"
           f"Message-ID: <r1@{DOMAIN}>\r\n\r\nWe are back.\r\n").encode()  # fmt: skip
    sig = dkim.sign(msg, selector.encode(), DOMAIN.encode(), keyfile.read_bytes(),
                    include_headers=[b"from", b"to", b"subject"])  # fmt: skip
    assert dkim.verify(sig + msg, dnsfunc=txt)
    # and the real signer (rspamd, as MailU runs it) signs with the restored key and maps
    from rspamdkit import Rspamd
    from test_rspamd_signing import signed_by

    (tmp_path / "rspamd").mkdir()
    with Rspamd(tmp_path / "rspamd", w.root) as rspamd:
        assert signed_by(rspamd, tmp_path / "zones", 1) == selector

    # runbook step 3: the spec names the new host; plan has nothing to do
    w.point_spec_at_new()
    plan = cli("plan", "-f", w.spec, "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    again = cli("server", "rebuild", "mx1", "--yes")  # finished: nothing running to resume
    assert again.code == 2, again.err
    audit = cli("state", "audit", "-o", "json").out
    for step in ("start", "replacement", "bootstrap", "install", "restore", "cutover",
                 "verify", "retire"):  # fmt: skip
        assert f"server.rebuild.{step}" in audit


def test_rebuild_never_restores_a_corrupted_snapshot(tmp_path, monkeypatch, capsys, world):
    w, stack = world

    def cli(*args):
        return run_inprocess(capsys, *args)

    prep = prepare(cli, w, monkeypatch, corrupt_second=True)
    good, bad = prep.snapshots
    smtp_port, imap_port = mail_services(tmp_path, stack)
    asked = cli(*rebuild_args(w, smtp_port, imap_port), "--snapshot", bad[:8])
    assert asked.code == 5, asked.err
    assert "corrupted" in asked.err and f"--snapshot {good[:8]}" in asked.err
    rb = cli(*rebuild_args(w, smtp_port, imap_port), "-o", "json")
    assert rb.code == 0, rb.err + rb.out
    assert rb.json()["snapshot"] == good
    assert any(bad[:8] in s for s in rb.json()["steps"]["restore"]["skipped"])
    after = {k: v for k, v in tree_digest(w.root).items() if k in prep.before}
    assert after == prep.before  # the verified snapshot's mail, nothing of the corrupted one


def test_readme_runbook_is_three_commands_that_parse():
    from clitools import REPO, cli_tree, parse_command_line

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Disaster recovery") :]
    section = section[: section.index("\n### ", 10)]
    runbook = section[section.index("**The runbook**") :]
    block = runbook[runbook.index("```sh\n") + 6 : runbook.index("```", runbook.index("```sh") + 5)]
    lines = [ln for ln in block.splitlines() if ln.strip()]
    assert [ln.split()[1] for ln in lines] == ["recover", "server", "plan"]
    root = cli_tree()
    for line in lines:
        assert parse_command_line(root, line) is None, line
