"""The disaster-recovery world shared by the drill, crash and benchmark runs: two "hosts"
(real sshd on 127.0.0.41 and .42, each with its own recording docker/apt shims and its own
login home), a backup host (sshd on .43, its internal SFTP server), the MailU REST API double
and a tenant spec (static server mx1 on .41, zone files, a BackupPolicy to the backup host).

Both sshd run on this machine, so both "hosts" see one file system: the MailU root is one
path; the disaster moves it away (``lose_server``) before the replacement writes it again."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes.mailu import FakeMailu
from hostshims import install_shims
from sshd import SshServer, keygen

TOKEN = "drill-api-token-0123456789abcdef"
DOMAIN = "acme-mail.example"
OLD, NEW, BACKUP = "127.0.0.41", "127.0.0.42", "127.0.0.43"


def spec_text(
    tmp: Path, srv: SshServer, api_url: str, root: Path, backup: SshServer, dkim: str = ""
) -> str:
    repo = f"sftp://root@{backup.address}:{backup.port}/{tmp / 'backup-host'}/{{server}}"
    return f"""\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {{name: acme}}
---
apiVersion: penguinctl/v1
kind: Server
metadata: {{name: mx1, tenant: acme}}
spec:
  provider: static
  static: {{address: {srv.address}, ssh_port: {srv.port}, initial_key: "file:{tmp / "initial"}"}}
  hostname: mail.{DOMAIN}
  mail: {{stack: mailu, version: "2024.06", tls: letsencrypt, api_url: "{api_url}", root: {root}}}
  backup: nightly
---
apiVersion: penguinctl/v1
kind: BackupPolicy
metadata: {{name: nightly, tenant: acme}}
spec:
  schedule: "30 2 * * *"
  retention: {{daily: 7}}
  repository: "{repo}"
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {{name: zones, tenant: acme}}
spec: {{type: zonefile, directory: {tmp / "zones"}}}
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {DOMAIN}, tenant: acme}}
spec:
  server: mx1
  dns: zones
{dkim}  mailboxes:
    - {{local: john, display_name: John Smith, daily_limit: 40}}
"""


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def deliver(root: Path, n: int = 20, size: int = 4096) -> None:
    """Mail "sent into" the server: maildir files as dovecot would leave them."""
    import random

    rnd = random.Random(23)
    box = root / "mail" / f"john@{DOMAIN}"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = rnd.randbytes(size).hex().encode()
        msg = (
            (
                f"From: lead{i}@example.net\r\nTo: john@{DOMAIN}\r\nSubject: re: hi {i}\r\n"
                f"Message-ID: <{i}@example.net>\r\n\r\n"
            ).encode()
            + body
            + b"\r\n"
        )
        sub = "cur" if i % 2 else "new"
        (box / sub / f"17000000{i:02d}.M{i}P1.mx1{':2,S' if sub == 'cur' else ''}").write_bytes(msg)


@dataclass
class World:
    tmp: Path
    old: SshServer
    new: SshServer
    backup: SshServer
    mailu: FakeMailu
    root: Path
    spec: Path
    sftp_key: str

    def sftp_fields(self) -> str:
        known = f"[{self.backup.address}]:{self.backup.port} {self.backup.host_key_public}"
        import json

        return json.dumps({"sftp_private_key": self.sftp_key, "sftp_known_hosts": known})

    def lose_server(self) -> None:
        """The old server is gone: its sshd stops, its disk (the MailU root) is lost."""
        self.old.stop()
        shutil.move(str(self.root), str(self.tmp / "lost-disk"))

    def point_spec_at_new(self) -> None:
        text = self.spec.read_text().replace(
            f"address: {self.old.address}, ssh_port: {self.old.port}",
            f"address: {self.new.address}, ssh_port: {self.new.port}",
        )
        self.spec.write_text(text)


def start_world(tmp: Path, stack: Any, *, dkim: str = "", mailu_cls: Any = FakeMailu) -> World:
    _, initial_pub = keygen(tmp / "initial")
    sftp_priv, sftp_pub = keygen(tmp / "id_sftp")
    shims_a = install_shims(tmp / "bin-a")
    shims_b = install_shims(tmp / "bin-b")
    old = stack.enter_context(
        SshServer(
            tmp / "sshd-a",
            OLD,
            authorized_keys=[initial_pub],
            path_prefix=shims_a.directory,
            home=tmp / "home-a",
        )
    )
    new = stack.enter_context(
        SshServer(
            tmp / "sshd-b",
            NEW,
            authorized_keys=[initial_pub],
            path_prefix=shims_b.directory,
            home=tmp / "home-b",
        )
    )
    backup = stack.enter_context(SshServer(tmp / "sshd-c", BACKUP, authorized_keys=[sftp_pub]))
    mailu = stack.enter_context(mailu_cls(api_token=TOKEN, hostname=f"mail.{DOMAIN}"))
    root = tmp / "srv" / "mailu"
    spec = tmp / "tenant.yaml"
    spec.write_text(spec_text(tmp, old, mailu.url, root, backup, dkim))
    return World(tmp, old, new, backup, mailu, root, spec, sftp_priv)


@dataclass
class Prepared:
    before: dict[str, str]  # the mail tree's digest when the server was lost
    key: Path  # the recovery key file
    offsite: Path  # where the state backup and escrow were copied
    snapshots: list[str]


def prepare(
    cli: Any,
    w: World,
    monkeypatch: Any,
    *,
    corrupt_second: bool = False,
    recover: bool = True,
    mails: tuple[int, int] = (20, 4096),
) -> Prepared:
    """Day 0 to the disaster: init, apply, mail, recovery key, server backup + drill, state and
    secrets backup; then server and home are lost and ``recover`` runs on a fresh home. With
    ``corrupt_second`` a second snapshot is taken after more mail, its new pack files corrupted,
    and its drill fails (the first one stays verified)."""
    tmp = w.tmp
    assert cli("init").code == 0
    token = tmp / "token.json"
    token.write_text(f'{{"api_token": "{TOKEN}"}}')
    assert cli("secrets", "put", "tenants/acme/servers/mx1/mailu", "-f", token).code == 0
    sftp = tmp / "sftp.json"
    sftp.write_text(w.sftp_fields())
    assert cli("secrets", "put", "tenants/acme/backups/mx1", "-f", sftp).code == 0
    applied = cli("apply", "-f", w.spec, "--yes")
    assert applied.code == 0, applied.out + applied.err
    deliver(w.root, *mails)
    before = {k: v for k, v in tree_digest(w.root).items()
              if k.startswith(("mail/", "dkim-sign/", "data/"))}  # fmt: skip
    key = tmp / "offline" / "recovery-key.txt"
    key.parent.mkdir()
    assert cli("recovery-key", "create", "--out", key).code == 0
    run = cli("backup", "run", "mx1", "--mailu-root", w.root, "-o", "json")
    assert run.code == 0, run.err + run.out
    snaps = [run.json()["servers"][0]["snapshot"]]
    drill = cli("backup", "verify", "mx1", "--read-data-subset", "100%")
    assert drill.code == 0, drill.err + drill.out
    if corrupt_second:
        import time

        repo = tmp / "backup-host" / "mx1"
        packs = {p: p.stat().st_mtime for p in (repo / "data").rglob("*") if p.is_file()}
        time.sleep(0.05)
        deliver(w.root, n=5, size=200_000)  # new data: new pack files
        run2 = cli("backup", "run", "mx1", "--mailu-root", w.root, "-o", "json")
        assert run2.code == 0, run2.err
        snaps.append(run2.json()["servers"][0]["snapshot"])
        fresh = [p for p in (repo / "data").rglob("*") if p.is_file() and p not in packs]
        assert fresh
        for p in fresh:
            p.chmod(0o644)
            data = bytearray(p.read_bytes())
            data[len(data) // 2] ^= 0xFF
            p.write_bytes(bytes(data))
        bad = cli("backup", "verify", "mx1", "--read-data-subset", "100%")
        assert bad.code == 5, bad.out + bad.err
    offsite = tmp / "offsite"
    st = cli("backup", "state", "--to", offsite / "state.db", "-o", "json")
    assert st.code == 0 and st.json()["secrets"]["file"], st.err
    w.lose_server()
    shutil.rmtree(tmp / "home")
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp / "new-home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp / 'new-home' / 'state.db'}")
    if recover:
        rec = cli("recover", "--state", offsite / "state.db", "--secrets",
                  offsite / "state.escrow", "--recovery-key", key)  # fmt: skip
        assert rec.code == 0, rec.err + rec.out
    return Prepared(before, key, offsite, snaps)


def mail_services(tmp: Path, stack: Any) -> tuple[int, int]:
    """An SMTP banner on the new host and a Dovecot on 127.0.0.1 where john logs in with the
    restored password: (smtp port, imap port)."""
    from aiosmtpd.controller import Controller
    from imapd import ImapServer
    from sshd import free_port

    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    secrets = AppContext(settings=load_settings()).secrets()
    password = secrets.get(f"tenants/acme/mailboxes/john@{DOMAIN}")["password"].reveal()
    smtp_port = free_port(NEW)
    smtp = Controller(object(), hostname=NEW, port=smtp_port)
    smtp.start()
    stack.callback(smtp.stop)
    (tmp / "imap").mkdir(exist_ok=True)
    imap = stack.enter_context(ImapServer(tmp / "imap", users={f"john@{DOMAIN}": password}))
    return smtp_port, imap.port


def rebuild_args(w: World, smtp_port: int, imap_port: int) -> list[str]:
    return ["server", "rebuild", "mx1", "--onto", f"{NEW}:{w.new.port}", "--yes",
            "--probe", f"smtp={NEW}:{smtp_port}", "--probe", f"imap=127.0.0.1:{imap_port}",
            "--imap-plain"]  # fmt: skip
