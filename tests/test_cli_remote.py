"""`server exec` and `server trust-hostkey` through the CLI against real sshd servers on 127.0.0.x:
parallel fan-out, an unreachable server failing alone, a changed host key refused until trusted."""

from __future__ import annotations

import pytest
from clitools import run_inprocess
from sshd import SshServer, free_port, keygen


def _spec(servers: list[tuple[str, str, int]]) -> str:
    docs = ["apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"]
    for name, address, port in servers:
        docs.append(
            "apiVersion: penguinctl/v1\nkind: Server\n"
            f"metadata: {{name: {name}, tenant: acme}}\n"
            "spec:\n  provider: static\n"
            f"  static: {{address: {address}, ssh_user: root, ssh_port: {port}}}\n"
            f"  hostname: {name}.acme-mail.example\n"
            "  mail: {stack: none}\n"
        )
    return "---\n".join(docs)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("keys") / "id_ed25519")


@pytest.fixture
def hosts(tmp_path, client_key):
    servers = []
    try:
        for address in ("127.0.0.2", "127.0.0.3"):
            srv = SshServer(tmp_path / address, address, authorized_keys=[client_key[1]])
            servers.append(srv.start())
        yield servers
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url, hosts, client_key):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    spec = tmp_path / "spec.yaml"
    dead = ("mx3", "127.0.0.4", free_port("127.0.0.4"))  # nothing listens there
    spec.write_text(_spec([("mx1", hosts[0].address, hosts[0].port),
                           ("mx2", hosts[1].address, hosts[1].port), dead]))  # fmt: skip

    def run(*args):
        return run_inprocess(capsys, *args)

    assert run("apply", "-f", spec, "--yes").code == 0
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    ks = KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key)
    for name in ("mx1", "mx2", "mx3"):
        ks.put(f"tenants/acme/servers/{name}/ssh", {"private_key": client_key[0]})
    return run


def test_exec_fans_out_and_isolates_the_unreachable(cli, client_key):
    res = cli("server", "exec", "echo hello from $(hostname -I 2>/dev/null || echo x); id -u",
              "--all", "-o", "json")  # fmt: skip
    assert res.code == 6, res.err  # partial: mx3 is unreachable, the others completed
    data = res.json()
    status = {h["host"]: h["status"] for h in data["hosts"]}
    assert status == {"mx1": "ok", "mx2": "ok", "mx3": "unreachable"}
    assert data["output"]["mx1"].strip().endswith("0")
    assert client_key[0].splitlines()[1] not in res.out + res.err
    ok = cli("server", "exec", "true", "mx1", "mx2")
    assert ok.code == 0, ok.err


def test_changed_host_key_is_refused_until_trusted(cli, hosts):
    assert cli("server", "exec", "true", "mx1").code == 0  # pins the key
    srv = hosts[0]
    old = srv.fingerprint
    srv.stop()
    srv.new_host_key()
    srv.start()
    res = cli("server", "exec", "touch /tmp/penguinctl-should-not-run", "mx1")
    assert res.code == 5
    assert old in res.err and srv.fingerprint in res.err
    assert "penguinctl server trust-hostkey mx1" in res.err
    trusted = cli("server", "trust-hostkey", "mx1", "-o", "json")
    assert trusted.code == 0 and trusted.json()["forgotten"] is True
    assert cli("server", "exec", "true", "mx1").code == 0
    audit = cli("state", "audit", "-o", "json").json()
    assert [e["action"] for e in audit if e["action"].startswith("hostkey.")][:3] == [
        "hostkey.pinned",
        "hostkey.forgotten",
        "hostkey.pinned",
    ]


def test_usage(cli):
    assert cli("server", "exec", "true").code == 2
    assert cli("server", "exec", "true", "nope").code == 2


# -- server playbook ------------------------------------------------------------------------
def test_playbook_fans_out_idempotently_and_isolates_the_unreachable(cli, tmp_path):
    base = f"--var=base={tmp_path / 'srv'}"
    first = cli("server", "playbook", "example", "--all", base, "-o", "json")
    assert first.code == 6, first.err  # mx3 is unreachable; the others completed
    data = first.json()
    assert data["playbook"] == "example" and data["check"] is False
    status = {h["host"]: h["status"] for h in data["hosts"]}
    assert status == {"mx1": "changed", "mx2": "changed", "mx3": "unreachable"}
    mx1 = next(h for h in data["hosts"] if h["host"] == "mx1")
    assert [s["status"] for s in mx1["steps"]] == ["changed"] * 5
    assert (tmp_path / "srv" / "mx1" / "app.conf").read_text().startswith("# example config")

    again = cli("server", "playbook", "example", "mx1", "mx2", base, "-o", "json")
    assert again.code == 0, again.err
    assert again.json()["counts"] == {
        "ok": 2, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0,
    }  # fmt: skip
    audit = cli("state", "audit", "-o", "json").json()
    runs = [e for e in audit if e["action"] == "server.playbook"]
    assert {(e["resource"], e["result"]) for e in runs} >= {
        ("server/mx1", "changed"), ("server/mx1", "ok"), ("server/mx3", "unreachable"),
    }  # fmt: skip


def test_playbook_check_shows_diffs_and_changes_nothing(cli, tmp_path):
    base = f"--var=base={tmp_path / 'srv'}"
    assert cli("server", "playbook", "example", "mx1", base).code == 0
    conf = tmp_path / "srv" / "mx1" / "app.conf"
    conf.write_text(conf.read_text().replace("workers = 4", "workers = 1"))
    res = cli("server", "playbook", "example", "mx1", base, "--var", "version=2.0", "--check")
    assert res.code == 0, res.err
    assert "would change app config" in res.out
    assert "-workers = 1" in res.out and "+workers = 4" in res.out
    assert "would change version stamp" in res.out and "check: nothing was changed" in res.out
    assert "workers = 1" in conf.read_text()
    assert (tmp_path / "srv" / "mx1" / "VERSION").read_text() == "1.0\n"


def test_playbook_max_fail_stops_early_and_bad_input(cli, tmp_path):
    base = f"--var=base={tmp_path / 'srv'}"
    res = cli("server", "playbook", "example", "mx3", "mx1", "mx2", base,
              "--parallel", "1", "--max-fail", "0", "-o", "json")  # fmt: skip
    assert res.code == 5  # no server completed
    data = res.json()
    assert data["stopped_early"] is True
    assert [h["status"] for h in data["hosts"]] == ["unreachable", "skipped", "skipped"]
    assert not (tmp_path / "srv").exists()

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - name: x\n    directory: {path: /x, mode: 755}\n")
    res = cli("server", "playbook", str(bad), "mx1")
    assert res.code == 3 and f"{bad}:4:" in res.err
    assert cli("server", "playbook", "example", "mx1", "--var", "nope").code == 2
    assert cli("server", "playbook", "no-such-book", "mx1").code == 3


# -- server ssh -----------------------------------------------------------------------------
def test_ssh_pins_on_first_contact_runs_the_system_client_and_cleans_up(
    cli, tmp_path, hosts, state_url
):
    from clitools import run_subprocess

    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    env = {
        "PENGUINCTL_HOME": str(tmp_path / "home"),
        "PENGUINCTL_STATE": state_url,
        "TMPDIR": str(scratch),
    }
    first = run_subprocess(env, "server", "ssh", "mx1", "--", "echo", "hello", "$((6*7))")
    assert first.code == 0, first.err
    assert first.out == "hello 42\n"  # a remote command, run by the remote shell as ssh does
    assert f"pinned the host key of mx1 ({hosts[0].address}:{hosts[0].port})" in first.err
    assert hosts[0].fingerprint in first.err
    assert list(scratch.iterdir()) == []  # the identity file and known_hosts are gone

    second = run_subprocess(env, "server", "ssh", "mx1", "--", "exit", "7")
    assert second.code == 7 and "pinned" not in second.err
    assert list(scratch.iterdir()) == []

    srv = hosts[0]
    srv.stop()
    srv.new_host_key()
    srv.start()
    refused = run_subprocess(env, "server", "ssh", "mx1", "--", "touch", str(tmp_path / "ran"))
    assert refused.code == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.err
    assert not (tmp_path / "ran").exists()
    assert list(scratch.iterdir()) == []
