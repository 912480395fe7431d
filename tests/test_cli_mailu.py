"""The whole CLI with MailU domains, mailboxes and aliases, against the local double of MailU's
REST API (tests/fakes/mailu.py): a static server whose ``mail.api_url`` points at the double.

Only the HTTP path is exercised here: the server's ``mailstack`` resource (MailU's install over
SSH, tested elsewhere) is recorded without side effects, as if MailU had been installed
already, so no SSH connection is ever attempted. The API token comes from the secrets backend
(``tenants/acme/servers/mx1/mailu``), as the install would have left it."""

from __future__ import annotations

import pytest
from clitools import run_inprocess
from fakes.mailu import FakeMailu

TOKEN = "mailu-cli-token-6a1d9f0c3b2e4d5f8a7c"
DOMAIN = "acme-mail.example"


def _spec(api_url: str, zones, *, mailboxes: str, aliases: str = "", extra: str = "") -> str:
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
  static: {{address: 127.0.0.1, ssh_user: root, ssh_port: 1}}
  hostname: mail.{DOMAIN}
  mail: {{stack: mailu, api_url: "{api_url}"}}
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {{name: zones, tenant: acme}}
spec: {{type: zonefile, directory: {zones}}}
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {DOMAIN}, tenant: acme}}
spec:
  server: mx1
  dns: zones
  dmarc: {{policy: none, rua: dmarc@{DOMAIN}}}
  mailboxes:
{mailboxes}{aliases}{extra}"""


BOXES = (
    "    - {local: john, display_name: John Smith, daily_limit: 40}\n"
    "    - {local: sara, display_name: Sara Lee, daily_limit: 30}\n"
)
ALIASES = (
    "  aliases:\n"
    f"    - {{local: sales, destinations: [john@{DOMAIN}, sara@{DOMAIN}]}}\n"
    f"    - {{local: postmaster, destinations: [john@{DOMAIN}]}}\n"
)


@pytest.fixture
def fake():
    with FakeMailu(api_token=TOKEN, hostname=f"mail.{DOMAIN}") as server:
        yield server


@pytest.fixture
def env(tmp_path, monkeypatch, state_url):
    values = {
        "PENGUINCTL_HOME": str(tmp_path / "home"),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_TODAY": "2026-11-23",
        "SARA_PASSWORD": "sara-from-the-environment-1",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture(autouse=True)
def no_ssh(monkeypatch):
    """The mail stack counts as installed: its resource is recorded, nothing runs over SSH."""
    from penguinctl.providers import registry
    from penguinctl.providers.base import RecordOnlyProvider

    build = registry.Providers._build

    def _build(self, name):
        if name.startswith("mailstack:"):
            return RecordOnlyProvider(name)
        return build(self, name)

    monkeypatch.setattr(registry.Providers, "_build", _build)


@pytest.fixture
def secrets(env):
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    settings = load_settings(env)
    backend = KeystoreBackend(settings.keystore_dir, key_file=settings.master_key_file)
    backend.put(
        "tenants/acme/servers/mx1/mailu",
        {"api_token": TOKEN, "secret_key": "A1B2C3D4E5F6G7H8", "admin_password": "adm-pw-x"},
    )
    return backend


@pytest.fixture
def write(tmp_path, fake):
    path = tmp_path / "spec.yaml"

    def _write(**kw) -> object:
        kw.setdefault("mailboxes", BOXES)
        path.write_text(_spec(fake.url, tmp_path / "zones", **kw))
        return path

    return _write


@pytest.fixture
def cli(env, capsys, secrets):
    return lambda *args: run_inprocess(capsys, *args)


def _password(secrets, address: str) -> str:
    return secrets.get(f"tenants/acme/mailboxes/{address}")["password"].reveal()


def test_apply_creates_domain_mailboxes_aliases_then_no_changes(cli, fake, write, secrets):
    spec = write(aliases=ALIASES)
    plan = cli("plan", "-f", spec, "-o", "json")
    assert plan.code == 0, plan.err
    planned = {c["resource"] for c in plan.json()["changes"]}
    assert f"maildomain/acme/{DOMAIN}" in planned
    assert {f"mailbox/acme/john@{DOMAIN}", f"mailalias/acme/sales@{DOMAIN}"} <= planned
    assert fake.writes() == []  # a plan changes nothing
    order = [c["resource"] for c in plan.json()["changes"]]
    if "mailstack/acme/mx1" in order:  # MailU is installed before its domains are created
        assert order.index("mailstack/acme/mx1") < order.index(f"maildomain/acme/{DOMAIN}")
    assert order.index(f"maildomain/acme/{DOMAIN}") < order.index(f"mailbox/acme/john@{DOMAIN}")
    assert order.index(f"mailbox/acme/john@{DOMAIN}") < order.index(
        f"mailalias/acme/sales@{DOMAIN}"
    )

    res = cli("apply", "-f", spec, "--yes", "-o", "json")
    assert res.code == 0, res.err + res.out
    assert fake.domains[DOMAIN]["max_users"] == -1
    assert set(fake.users) == {f"john@{DOMAIN}", f"sara@{DOMAIN}"}
    assert fake.users[f"john@{DOMAIN}"]["displayed_name"] == "John Smith"
    assert fake.aliases[f"sales@{DOMAIN}"]["destination"] == [f"john@{DOMAIN}", f"sara@{DOMAIN}"]
    # generated passwords are in the secrets backend and they log in
    for local in ("john", "sara"):
        pw = _password(secrets, f"{local}@{DOMAIN}")
        assert len(pw) >= 32 and fake.login(f"{local}@{DOMAIN}", pw)
    # never in the state store, the plan or the output
    described = cli("describe", "mailbox", f"john@{DOMAIN}", "-o", "json").out
    assert _password(secrets, f"john@{DOMAIN}") not in described + res.out + plan.out

    writes = len(fake.writes())
    again = cli("apply", "-f", spec, "--yes")
    assert again.code == 0 and "No changes" in again.out, again.out + again.err
    assert len(fake.writes()) == writes
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0


def test_spec_change_updates_and_password_reference(cli, fake, write, secrets):
    spec = write(aliases=ALIASES)
    assert cli("apply", "-f", spec, "--yes").code == 0
    john_pw = _password(secrets, f"john@{DOMAIN}")

    changed = (
        "    - {local: john, display_name: John Q. Smith, daily_limit: 40}\n"
        "    - {local: sara, display_name: Sara Lee, daily_limit: 30,"
        " password: env:SARA_PASSWORD}\n"
    )
    aliases = f"  aliases:\n    - {{local: sales, destinations: [sara@{DOMAIN}]}}\n"
    spec = write(mailboxes=changed, aliases=aliases)
    res = cli("apply", "-f", spec, "--yes", "-o", "json")
    assert res.code == 0, res.err + res.out
    assert fake.users[f"john@{DOMAIN}"]["displayed_name"] == "John Q. Smith"
    assert fake.login(f"john@{DOMAIN}", john_pw)  # untouched
    assert fake.login(f"sara@{DOMAIN}", "sara-from-the-environment-1")  # the reference's value
    assert fake.aliases[f"sales@{DOMAIN}"]["destination"] == [f"sara@{DOMAIN}"]
    assert f"postmaster@{DOMAIN}" not in fake.aliases  # an alias needs no --force to go
    assert cli("apply", "-f", spec, "--yes").out.count("No changes") == 1


def test_removing_a_mailbox_needs_force(cli, fake, write, secrets):
    spec = write(aliases=ALIASES)
    assert cli("apply", "-f", spec, "--yes").code == 0
    spec = write(
        mailboxes="    - {local: john, display_name: John Smith, daily_limit: 40}\n",
        aliases=f"  aliases:\n    - {{local: sales, destinations: [john@{DOMAIN}]}}\n",
    )
    refused = cli("apply", "-f", spec, "--yes")
    assert refused.code == 4, refused.out + refused.err
    assert f"mailbox/sara@{DOMAIN}" in refused.out + refused.err
    assert f"sara@{DOMAIN}" in fake.users
    res = cli("apply", "-f", spec, "--yes", "--force")
    assert res.code == 0, res.err
    assert f"sara@{DOMAIN}" not in fake.users and f"john@{DOMAIN}" in fake.users
    # its generated password is gone
    assert secrets.get(f"tenants/acme/mailboxes/sara@{DOMAIN}") is None
    assert fake.aliases[f"sales@{DOMAIN}"]["destination"] == [f"john@{DOMAIN}"]

    # destroy: the MailU domain goes too, with --force only
    assert cli("destroy", "-f", spec, "--yes").code == 4
    assert DOMAIN in fake.domains
    assert cli("destroy", "-f", spec, "--yes", "--force").code == 0
    assert fake.domains == {} and fake.users == {} and fake.aliases == {}


def test_drift_deleted_by_hand_is_recreated_with_the_same_password(cli, fake, write, secrets):
    spec = write(aliases=ALIASES)
    assert cli("apply", "-f", spec, "--yes").code == 0
    john_pw = _password(secrets, f"john@{DOMAIN}")
    fake.remove_user(f"john@{DOMAIN}")  # an admin deletes the mailbox in MailU's UI
    fake.remove_alias(f"postmaster@{DOMAIN}")
    fake.state.domains[DOMAIN]["max_users"] = 5
    fake.state.users[f"sara@{DOMAIN}"]["displayed_name"] = "changed by hand"

    plan = cli("plan", "-f", spec, "-o", "json")
    assert plan.code == 0, plan.err
    actions = {c["resource"]: c["action"] for c in plan.json()["changes"]}
    assert actions == {
        f"mailbox/acme/john@{DOMAIN}": "create",
        f"mailalias/acme/postmaster@{DOMAIN}": "create",
        f"maildomain/acme/{DOMAIN}": "update",
        f"mailbox/acme/sara@{DOMAIN}": "update",
    }
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 2
    res = cli("apply", "-f", spec, "--yes")
    assert res.code == 0, res.err
    assert fake.login(f"john@{DOMAIN}", john_pw)  # the stored password still works
    assert fake.domains[DOMAIN]["max_users"] == -1
    assert fake.users[f"sara@{DOMAIN}"]["displayed_name"] == "Sara Lee"
    assert fake.aliases[f"postmaster@{DOMAIN}"]["destination"] == [f"john@{DOMAIN}"]
    assert "No changes" in cli("apply", "-f", spec, "--yes").out


def test_mailu_down_at_plan_uses_recorded_state_and_apply_fails_clearly(cli, fake, write, secrets):
    spec = write()
    assert cli("apply", "-f", spec, "--yes").code == 0
    fake.inject(503, times=1000)
    plan = cli("plan", "-f", spec, "-o", "json")
    assert plan.code == 0 and plan.json()["changes"] == []
    assert any("live MailU state not read" in w for w in plan.json()["warnings"])
    fake.injections.clear()
    # a new mailbox whose domain MailU refuses: the error names the server and the mailbox
    spec = write(mailboxes=BOXES + "    - {local: bob, daily_limit: 10}\n")
    fake.inject(400, method="POST", prefix="/user", body={"code": 400, "message": "nope"})
    res = cli("apply", "-f", spec, "--yes")
    assert res.code in (5, 6), res.out + res.err
    assert f"MailU API on mx1: user bob@{DOMAIN}" in res.err and TOKEN not in res.err
    fake.injections.clear()
    assert cli("apply", "-f", spec, "--yes").code == 0
    assert fake.login(f"bob@{DOMAIN}", _password(secrets, f"bob@{DOMAIN}"))


def test_no_api_token_is_a_clear_error(cli, fake, write, secrets):
    secrets.delete("tenants/acme/servers/mx1/mailu")
    res = cli("apply", "-f", write(), "--yes")
    assert res.code in (5, 6)
    assert "no MailU API token for server mx1" in res.err
    assert fake.writes() == []


def test_alias_spec_validation(cli, write):
    bad = write(aliases=f"  aliases:\n    - {{local: john, destinations: [sara@{DOMAIN}]}}\n")
    res = cli("validate", "-f", bad)
    assert res.code == 3 and "also a mailbox" in res.err + res.out
    bad = write(aliases="  aliases:\n    - {local: sales, destinations: [not-an-address]}\n")
    res = cli("validate", "-f", bad)
    assert res.code == 3 and "not an e-mail address" in res.err + res.out


def test_maildomain_waits_for_the_mailstack_only_when_there_is_one():
    from penguinctl.desired import link_mailstacks
    from penguinctl.resources import Resource, ResourceKey

    domain = ResourceKey("domain", "acme", DOMAIN)
    md = Resource(
        ResourceKey("maildomain", "acme", DOMAIN), {"server": "mx1"}, "mail:mx1", (domain,)
    )
    out = {md.key: md}
    link_mailstacks(out)
    assert md.depends_on == (domain,)  # no mailstack kind in the desired state: nothing to wait for
    stack = Resource(ResourceKey("mailstack", "", "mx1"), {}, "mailstack:mx1")
    out[stack.key] = stack
    link_mailstacks(out)
    link_mailstacks(out)
    assert md.depends_on == (domain, stack.key)
