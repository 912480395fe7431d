"""Drift of secrets (issue 16, 2.6): a DKIM private key deleted from the secrets backend (the
keystore and Vault) or replaced by another key is shown by `plan` as a change, `apply` fails that
change saying what to do (the signing selector is never dropped), `dkim status` says "key
missing", `secrets rotate` does not claim "rotated", and `dkim rotate` repairs it."""

from __future__ import annotations

import os

import pytest
from clitools import QUICKSTART, run_inprocess
from secrets_backends import secrets_backend  # noqa: F401

pytestmark = pytest.mark.clock

DOMAIN = "acme-mail.example"
PATH = f"tenants/acme/domains/{DOMAIN}/dkim/pm202611"


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, secrets_backend):  # noqa: F811
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def run(*args):
        return run_inprocess(capsys, *args)

    assert run("init").code == 0
    assert run("apply", "-f", QUICKSTART, "--yes").code == 0
    run.backend = secrets_backend
    return run


def _backend():
    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    env = dict(os.environ)
    return AppContext(settings=load_settings(env), env=env).secrets()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_missing_or_foreign_dkim_key_is_a_planned_change(cli, how):
    backend = _backend()
    stored = {k: v.reveal() for k, v in backend.get(PATH).items()}
    if how == "deleted":
        backend.delete(PATH)
        word = "is missing"
    else:
        from penguinctl.dkim import generate_many

        (other,) = generate_many(1, bits=2048)
        backend.put(PATH, {"private_key": other.private_pem, "public_key": other.public_b64})
        word = "does not match the published public key"

    plan = cli("plan", "-f", QUICKSTART, "--detailed-exitcode")
    assert plan.code == 2, plan.out + plan.err
    assert f"dkim/{DOMAIN}/pm202611: the private key at {PATH} {word}" in plan.out + plan.err
    assert "No changes" not in plan.out

    status = cli("dkim", "status", DOMAIN, "-o", "json")
    (key,) = status.json()["domains"][0]["keys"]
    assert key["key"] == ("missing" if how == "deleted" else "mismatch")
    assert "key missing" in cli("dkim", "status", DOMAIN).out or how == "replaced"

    listing = cli("secrets", "rotate", "--kind", "dkim", "-o", "json").json()
    (item,) = [i for i in listing["items"] if i["target"] == DOMAIN]
    assert item["key"] == key["key"]
    assert f"key {key['key']}" in cli("secrets", "rotate", "--kind", "dkim").out
    rotate = cli("secrets", "rotate", DOMAIN)
    assert rotate.code == 5 and "rotated" not in rotate.out.replace("nothing was rotated", "")
    assert "nothing was rotated" in rotate.out + rotate.err

    apply = cli("apply", "-f", QUICKSTART, "--yes")
    assert apply.code in (5, 6), apply.err
    assert "penguinctl dkim rotate acme-mail.example" in apply.out + apply.err
    home = os.environ["PENGUINCTL_HOME"]
    with open(f"{home}/zones/{DOMAIN}.zone") as fh:
        zone = fh.read()
    assert "pm202611._domainkey" in zone  # the signing selector is still published

    backend.put(PATH, stored)  # restored: converged again
    again = cli("plan", "-f", QUICKSTART, "--detailed-exitcode")
    assert again.code == 0 and "No changes" in again.out, again.out + again.err


def test_dkim_rotate_repairs_a_missing_key_without_dropping_the_selector(cli):
    backend = _backend()
    backend.delete(PATH)
    res = cli("dkim", "rotate", DOMAIN)
    assert res.code == 0, res.err
    status = cli("dkim", "status", DOMAIN, "-o", "json").json()["domains"][0]["keys"]
    phases = {k["selector"]: (k["phase"], k["key"]) for k in status}
    assert phases["pm202611"] == ("active", "missing")  # still published and signing
    (new,) = [s for s in phases if s != "pm202611"]
    assert phases[new][1] == "ok"
    assert backend.get(f"tenants/acme/domains/{DOMAIN}/dkim/{new}") is not None
