"""The disaster-recovery drill of the README, end to end with real parts: apply a tenant with a
static server (real sshd, MailU installed through the recording docker shims), mail delivered
into it, backups of server (SFTP to a backup host), state and secrets; the machine and the
server are lost; `recover` on a fresh home; `server rebuild` onto a second sshd. The mail tree
comes back byte-identical, DNS points at the new IP, mail signed with the restored DKIM key
verifies (dkimpy) against the published record, `plan` is empty."""

from __future__ import annotations

import contextlib
import shutil

import dkim
import dns.zone
import pytest
from clitools import run_inprocess
from daemons import need_binary
from recoverykit import DOMAIN, NEW, TOKEN, deliver, start_world, tree_digest

pytestmark = pytest.mark.clock


def _txt_from_zone(zones_dir):
    zone = dns.zone.from_file(str(zones_dir / f"{DOMAIN}.zone"), origin=DOMAIN, relativize=False)

    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        rdataset = zone.get_rdataset(name, "TXT")
        return b"".join(rdataset[0].strings) if rdataset else None

    return zone, txt


def test_disaster_recovery_drill(tmp_path, monkeypatch, capsys):
    need_binary("restic", "restic")
    from aiosmtpd.controller import Controller
    from imapd import ImapServer
    from sshd import free_port

    def cli(*args):
        return run_inprocess(capsys, *args)

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    with contextlib.ExitStack() as stack:
        w = start_world(tmp_path, stack)
        # day 0: the tenant is applied, MailU installed on the old server
        assert cli("init").code == 0
        token = tmp_path / "token.json"
        token.write_text(f'{{"api_token": "{TOKEN}"}}')
        assert cli("secrets", "put", "servers/mx1/mailu", "-f", token).code == 0
        sftp = tmp_path / "sftp.json"
        sftp.write_text(w.sftp_fields())
        assert cli("secrets", "put", "backups/mx1", "-f", sftp).code == 0
        applied = cli("apply", "-f", w.spec, "--yes")
        assert applied.code == 0, applied.out + applied.err
        deliver(w.root)
        before = {
            k: v
            for k, v in tree_digest(w.root).items()
            if k.startswith(("mail/", "dkim-sign/", "data/"))
        }
        assert any(k.startswith("mail/") for k in before)

        # the runbook's preparation: recovery key, server backup + drill, state + secrets
        key = tmp_path / "offline" / "recovery-key.txt"
        key.parent.mkdir()
        assert cli("recovery-key", "create", "--out", key).code == 0
        run = cli("backup", "run", "mx1", "--mailu-root", w.root, "-o", "json")
        assert run.code == 0, run.err + run.out
        drill = cli("backup", "verify", "mx1", "--read-data-subset", "100%")
        assert drill.code == 0, drill.err + drill.out
        offsite = tmp_path / "offsite"
        st = cli("backup", "state", "--to", offsite / "state.db", "-o", "json")
        assert st.code == 0 and st.json()["secrets"]["file"], st.err

        # the disaster: the server and the operator's machine are lost
        w.lose_server()
        shutil.rmtree(tmp_path / "home")
        monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "new-home"))
        monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'new-home' / 'state.db'}")

        # runbook step 1: recover state and secrets
        rec = cli(
            "recover",
            "--state",
            offsite / "state.db",
            "--secrets",
            offsite / "state.escrow",
            "--recovery-key",
            key,
        )
        assert rec.code == 0, rec.err + rec.out

        # the new host answers SMTP; IMAP logs in with the restored mailbox password
        from penguinctl.cli.context import AppContext
        from penguinctl.settings import load_settings

        secrets = AppContext(settings=load_settings()).secrets()
        password = secrets.get(f"mailboxes/john@{DOMAIN}")["password"].reveal()
        smtp_port = free_port(NEW)
        smtp = Controller(object(), hostname=NEW, port=smtp_port)
        smtp.start()
        stack.callback(smtp.stop)
        (tmp_path / "imap").mkdir()
        imap = stack.enter_context(
            ImapServer(tmp_path / "imap", users={f"john@{DOMAIN}": password})
        )

        # runbook step 2: rebuild the server onto the new host
        rb = cli(
            "server",
            "rebuild",
            "mx1",
            "--onto",
            f"{NEW}:{w.new.port}",
            "--yes",
            "--probe",
            f"smtp={NEW}:{smtp_port}",
            "--probe",
            f"imap=127.0.0.1:{imap.port}",
            "--imap-plain",
            "-o",
            "json",
        )
        assert rb.code == 0, rb.err + rb.out
        result = rb.json()
        assert result["recovery_seconds"] > 0
        assert [c["check"] for c in result["steps"]["verify"]["checks"]] == [
            "smtp",
            "imap",
            f"dkim:{DOMAIN}",
        ]

        # the mail tree is back, byte for byte
        after = {k: v for k, v in tree_digest(w.root).items() if k in before}
        assert after == before
        # DNS: the A and SPF records name the new host
        zone, txt = _txt_from_zone(tmp_path / "zones")
        a = zone.get_rdataset(f"mail.{DOMAIN}.", "A")
        assert [r.address for r in a] == [NEW]
        spf = b"".join(zone.get_rdataset(f"{DOMAIN}.", "TXT")[0].strings).decode()
        assert f"ip4:{NEW}" in spf and "127.0.0.41" not in spf
        # mail signed with the key the new host's signer loads verifies against DNS
        (keyfile,) = (w.root / "dkim-sign").glob(f"{DOMAIN}.*.key")
        selector = keyfile.name.removeprefix(f"{DOMAIN}.").removesuffix(".key")
        msg = (
            f"From: john@{DOMAIN}\r\nTo: lead@example.net\r\nSubject: back\r\n"
            f"Message-ID: <r1@{DOMAIN}>\r\n\r\nWe are back.\r\n"
        ).encode()
        sig = dkim.sign(
            msg,
            selector.encode(),
            DOMAIN.encode(),
            keyfile.read_bytes(),
            include_headers=[b"from", b"to", b"subject"],
        )
        assert dkim.verify(sig + msg, dnsfunc=txt)

        # runbook step 3: the spec names the new host; plan has nothing to do
        w.point_spec_at_new()
        plan = cli("plan", "-f", w.spec, "--detailed-exitcode")
        assert plan.code == 0, plan.out + plan.err
        again = cli("server", "rebuild", "mx1", "--yes")  # finished: nothing running to resume
        assert again.code == 2, again.err
