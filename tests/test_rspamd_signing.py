"""The real signer: Debian's rspamd (3.x, as MailU runs) loads the DKIM signing files penguinctl
wrote on a MailU server (the `.priority 2` override beating MailU's `use_vault = true`, the
selector and path maps, the keys) and signs a message passed through it with the domain's
current selector; dkimpy verifies it against the published zone: after apply, mid-rotation
(new key published, old still signing) and after rotation (maps switched over SSH, picked up
live). After a rebuild: tests/test_recovery_drill.py."""

from __future__ import annotations

import contextlib
import re
import time
from datetime import timedelta

import dkim
import pytest
from clitools import run_inprocess
from recoverykit import DOMAIN, TOKEN, start_world
from rspamdkit import Rspamd
from test_recovery_drill import _zone

from penguinctl import clock

pytestmark = pytest.mark.clock
DKIM = "  dkim: {rotate_every: 14s, propagation: 2s, retire_after: 2s, remove_after: 2s}\n"


def message(n: int) -> bytes:
    return (f"From: john@{DOMAIN}\r\nTo: lead@example.net\r\nSubject: note {n}\r\n"
            f"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{n}@{DOMAIN}>\r\n\r\n"
            f"A short note, number {n}.\r\n").encode()  # fmt: skip


def signed_by(rspamd: Rspamd, zones, n: int) -> str:
    """Pass message n through rspamd; the selector it signed with (dkimpy verified it)."""
    out = rspamd.sign(message(n), f"john@{DOMAIN}")
    assert b"DKIM-Signature:" in out, out[:2000]
    _, txt = _zone(zones)
    assert dkim.verify(out, dnsfunc=txt), out[:2000]
    sig = out.split(b"DKIM-Signature:", 1)[1].split(b"\r\n\r\n", 1)[0].decode()
    return re.search(r"(?:^|[;\s])s=([^;\s]+)", sig).group(1)


def test_rspamd_signs_with_the_current_selector(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    path = tmp_path / "clock"
    clock.FileClock.write(path, clock.now().replace(microsecond=0))
    monkeypatch.setenv("PENGUINCTL_CLOCK_FILE", str(path))
    fc = clock.FileClock(path)

    def cli(*args):
        return run_inprocess(capsys, *args)

    with contextlib.ExitStack() as stack:
        w = start_world(tmp_path, stack, dkim=DKIM)
        assert cli("init").code == 0
        token = tmp_path / "token.json"
        token.write_text(f'{{"api_token": "{TOKEN}"}}')
        assert cli("secrets", "put", "tenants/acme/servers/mx1/mailu", "-f", token).code == 0
        applied = cli("apply", "-f", w.spec, "--yes")
        assert applied.code == 0, applied.out + applied.err
        (tmp_path / "rspamd").mkdir()
        rspamd = stack.enter_context(Rspamd(tmp_path / "rspamd", w.root))
        zones = tmp_path / "zones"

        old = signed_by(rspamd, zones, 1)  # after apply
        assert old.startswith("pm")

        rot = cli("dkim", "rotate", DOMAIN, "-o", "json")
        assert rot.code == 0, rot.err
        new = rot.json()["steps"][0]["selector"]
        assert new != old
        assert signed_by(rspamd, zones, 2) == old  # mid-rotation: the old key still signs

        status = cli("dkim", "status", "-o", "json").json()["domains"][0]
        due = min(s["due_in_seconds"] for s in status["next"] if s["action"] != "rotate")
        clock.FileClock.write(path, fc.now() + timedelta(seconds=due + 1.05))
        act = cli("dkim", "rotate", "--all-due", "-o", "json")
        assert act.code == 0, act.err
        assert [s["action"] for s in act.json()["steps"]] == ["activate"]
        assert (w.root / "dkim-sign" / "selectors.map").read_text().endswith(f"{DOMAIN} {new}\n")
        deadline = time.monotonic() + 60
        n = 3
        while (got := signed_by(rspamd, zones, n)) != new and time.monotonic() < deadline:
            n += 1
            time.sleep(1)  # rspamd polls its maps
        assert got == new  # after rotation: the new selector, picked up without a restart
