"""`server rebuild` of a Hostwinds server: the replacement is ordered through the Hostwinds
double (its instances answer on real sshd at 127.0.0.51 and .52, port 22), bootstrapped,
MailU installed, the verified backup restored, the label, PTR, A and SPF records moved, mail
checked, and with --force the old instance terminated. A rebuild that stops after the order
(mail check failing) is re-run without a second order; the spec is unchanged and `plan` empty."""

from __future__ import annotations

import contextlib
import ipaddress
import json

from clitools import run_inprocess
from daemons import need_binary
from fakes.hostwinds import FakeHostwinds
from fakes.mailu import FakeMailu
from hostshims import install_shims
from recoverykit import DOMAIN, TOKEN, World, mail_services, prepare, tree_digest
from recoverykit import NEW as SINK  # where mail_services' SMTP banner listens
from sshd import SshServer, free_port, keygen
from test_recovery_drill import _zone

# Not marked `clock`: its processes run at a fixed date (PENGUINCTL_TODAY / a clock file), which
# takes precedence over the shifted runs' PENGUINCTL_TIME_OFFSET: a shifted re-run repeats it.
OLD, NEW, BACKUP, THIRD = "127.0.0.51", "127.0.0.52", "127.0.0.53", "127.0.0.54"
KEY = "hw-rebuild-key-0123456789"


def _spec(tmp, api_url: str, root, backup: SshServer) -> str:
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
  provider: hostwinds
  hostwinds: {{location_id: 1, template: ubuntu-22.04, rid: 2, billingcycle: monthly}}
  hostname: mail.{DOMAIN}
  mail: {{stack: mailu, version: "2024.06", tls: letsencrypt, api_url: "{api_url}", root: {root}}}
  backup: nightly
---
apiVersion: penguinctl/v1
kind: BackupPolicy
metadata: {{name: nightly, tenant: acme}}
spec: {{schedule: "30 2 * * *", retention: {{daily: 7}}, repository: "{repo}"}}
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
  mailboxes:
    - {{local: john, display_name: John Smith, daily_limit: 40}}
"""


def test_hostwinds_rebuild_orders_once_moves_everything_and_terminates_the_old(
    tmp_path, monkeypatch, capsys
):
    need_binary("restic", "restic")
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def cli(*args):
        return run_inprocess(capsys, *args)

    with contextlib.ExitStack() as stack:
        admin_priv, admin_pub = keygen(tmp_path / "id_admin")
        sftp_priv, sftp_pub = keygen(tmp_path / "id_sftp")
        hosts = []
        for address, name in ((OLD, "a"), (NEW, "b"), (THIRD, "d")):
            srv = SshServer(tmp_path / f"sshd-{name}", address, authorized_keys=[admin_pub],
                            path_prefix=install_shims(tmp_path / f"bin-{name}").directory,
                            home=tmp_path / f"home-{name}")  # fmt: skip
            srv.port = 22  # a Hostwinds server is reached on 22
            hosts.append(stack.enter_context(srv))
        backup = stack.enter_context(
            SshServer(tmp_path / "sshd-c", BACKUP, authorized_keys=[sftp_pub])
        )
        fake = stack.enter_context(FakeHostwinds(api_key=KEY, build_polls=0))
        fake._ips = iter([ipaddress.ip_address(a) for a in (OLD, NEW, THIRD)])
        mailu = stack.enter_context(FakeMailu(api_token=TOKEN, hostname=f"mail.{DOMAIN}"))
        for var, value in (("HOSTWINDS_API_KEY", KEY), ("HOSTWINDS_API_URL", fake.url),
                           ("HOSTWINDS_POLL_INTERVAL", "0.05")):  # fmt: skip
            monkeypatch.setenv(var, value)
        root = tmp_path / "srv" / "mailu"
        spec = tmp_path / "tenant.yaml"
        spec.write_text(_spec(tmp_path, mailu.url, root, backup))
        w = World(tmp_path, hosts[0], hosts[1], backup, mailu, root, spec, sftp_priv)
        admin = tmp_path / "admin.json"
        admin.write_text(json.dumps({"private_key": admin_priv, "public_key": admin_pub}))
        assert cli("secrets", "put", "tenants/acme/servers/mx1/ssh", "-f", admin).code == 0

        prep = prepare(cli, w, monkeypatch)
        (old_sid,) = list(fake.instances)
        assert fake.instances[old_sid]["main_ip"] == OLD
        smtp_port, imap_port = mail_services(tmp_path, stack)
        args = ["server", "rebuild", "mx1", "--yes", "--force", "--imap-plain",
                "--probe", f"imap=127.0.0.1:{imap_port}"]  # fmt: skip

        # the mail check fails (nothing on that SMTP port): stops after the cutover, old kept
        closed = cli(*args, "--probe", f"smtp={NEW}:{free_port(NEW)}")
        assert closed.code == 5, closed.err + closed.out
        assert old_sid in fake.instances and fake.count("add_instance") == 2

        done = cli(*args, "--probe", f"smtp={SINK}:{smtp_port}", "-o", "json")
        assert done.code == 0, done.err + done.out
        result = done.json()
        assert result["replacement"]["main_ip"] == NEW
        assert fake.count("add_instance") == 2  # the apply's order and one replacement
        (new_sid,) = list(fake.instances)  # the old one terminated (--force)
        assert new_sid != old_sid and fake.instances[new_sid]["srvrname"] == "pc-acme-mx1"
        assert fake.rdns[NEW] == f"mail.{DOMAIN}"  # PTR
        zone, _txt = _zone(tmp_path / "zones")
        assert [r.address for r in zone.get_rdataset(f"mail.{DOMAIN}.", "A")] == [NEW]
        spf = b"".join(zone.get_rdataset(f"{DOMAIN}.", "TXT")[0].strings).decode()
        assert f"ip4:{NEW}" in spf and OLD not in spf
        after = {k: v for k, v in tree_digest(root).items() if k in prep.before}
        assert after == prep.before
        plan = cli("plan", "-f", spec, "--detailed-exitcode")  # the spec did not change
        assert plan.code == 0, plan.out + plan.err

        # a smaller plan: not reachable in place (the disk cannot shrink), so apply refuses it
        # and says how; `server rebuild -f SPEC --allow-rebuild` orders a server with that plan
        spec.write_text(spec.read_text().replace("rid: 2,", "rid: 1,"))
        refused = cli("apply", "-f", spec, "--yes")
        assert refused.code != 0 and "--allow-rebuild" in refused.err, refused.err
        hosts[1].stop()  # (the .52 server is given up: one file system for all the "hosts")
        import shutil

        shutil.move(str(root), str(tmp_path / "disk-b"))
        args2 = [a for a in args if a != "--force"] + ["--probe", f"smtp={SINK}:{smtp_port}"]
        asked = cli(*args2, "-f", spec)
        assert asked.code == 4 and "--allow-rebuild" in asked.err, asked.err
        smaller = cli(*args2, "-f", spec, "--allow-rebuild", "-o", "json")
        assert smaller.code == 0, smaller.err + smaller.out
        assert smaller.json()["replacement"]["main_ip"] == THIRD
        (kept, third) = sorted(fake.instances)  # without --force the .52 instance stays
        assert fake.instances[third]["product_id"] == 101  # rid 1
        assert fake.instances[kept]["srvrname"] == "pc-acme-mx1-retired"
        assert fake.instances[third]["srvrname"] == "pc-acme-mx1"
        after = {k: v for k, v in tree_digest(root).items() if k in prep.before}
        assert after == prep.before
        assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0
