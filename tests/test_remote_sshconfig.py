"""The operator's ssh client config (``penguinctl.remote.sshconfig``) as the transport applies it:
which file is read, Include, Host aliases (HostName, User, Port), ProxyJump chains and their
pins, ProxyCommand refused, the config's IdentityFile never used for penguinctl's own servers;
and ``ssh.via`` in the spec (validation, JSON Schema, recorded data)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sshd import SshServer, keygen

from penguinctl.errors import ConfigError, SpecError
from penguinctl.remote import sshconfig
from penguinctl.remote.errors import SshAuthFailed
from penguinctl.remote.hostkeys import MemoryHostKeyStore
from penguinctl.remote.ssh import SshConnection, SshOptions
from penguinctl.remote.sshconfig import HostString, parse_host_string

FAST = SshOptions(connect_timeout=5, banner_timeout=5, auth_timeout=5, retries=0)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {"admin": keygen(d / "admin"), "operator": keygen(d / "operator")}


def _config(tmp_path: Path, text: str):
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return sshconfig.load({"PENGUINCTL_SSH_CONFIG": str(path), "HOME": str(tmp_path)})


# -- host strings and files -------------------------------------------------------------------
def test_host_strings():
    assert parse_host_string("ssh://jump@bastion.example.com:2222") == HostString(
        "bastion.example.com", "jump", 2222
    )
    assert parse_host_string("bastion") == HostString("bastion")
    assert parse_host_string("ssh://root@[2001:db8::1]:22") == HostString("2001:db8::1", "root", 22)
    assert parse_host_string("2001:db8::1") == HostString("2001:db8::1")
    assert str(HostString("2001:db8::1", "u", 22)) == "u@[2001:db8::1]:22"
    for bad in ("ssh://@host", "host:0", "host:x", "a b", "ssh://", "[::1", "u@h,g", "h:99999"):
        with pytest.raises(ValueError):
            parse_host_string(bad)


def test_which_file_is_read(tmp_path):
    home = tmp_path / "home"
    (home / ".ssh" / "conf.d").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Include conf.d/*.conf\nHost a\n  HostName 192.0.2.1\n")
    (home / ".ssh" / "conf.d" / "b.conf").write_text("Host b\n  HostName 192.0.2.2\n  Port 2\n")
    default = sshconfig.load({"HOME": str(home)})
    assert default.lookup("a")["hostname"] == "192.0.2.1"
    assert default.lookup("b")["port"] == "2"  # from the Include
    nothing = sshconfig.load({"HOME": str(home), "PENGUINCTL_SSH_CONFIG": "none"})
    assert nothing.lookup("a")["hostname"] == "a"  # no file read: the name is the host
    only = tmp_path / "only"
    only.write_text("Host a\n  HostName 192.0.2.9\n")
    env = {"HOME": str(home), "PENGUINCTL_SSH_CONFIG": str(only)}
    assert sshconfig.load(env).lookup("a")["hostname"] == "192.0.2.9"
    assert sshconfig.load(env).lookup("b").get("hostname") == "b"  # the default file is not read
    with pytest.raises(ConfigError, match="PENGUINCTL_SSH_CONFIG"):
        sshconfig.load({"PENGUINCTL_SSH_CONFIG": str(tmp_path / "missing")})
    loop = tmp_path / "loop"
    loop.write_text(f"Include {loop}\n")
    with pytest.raises(ConfigError, match="nested too deep"):
        sshconfig.load({"PENGUINCTL_SSH_CONFIG": str(loop)})


# -- aliases and jump chains, resolved without connecting -------------------------------------
def test_alias_fills_what_the_caller_leaves_out(tmp_path, keys):
    cfg = _config(tmp_path, "Host mx1\n  HostName 192.0.2.5\n  User deploy\n  Port 2200\n")
    store = MemoryHostKeyStore()
    conn = SshConnection("mx1", None, None, keys["admin"][0], host_keys=store, ssh_config=cfg)
    assert (conn.host, conn.port, conn.user) == ("192.0.2.5", 2200, "deploy")
    explicit = SshConnection("mx1", 22, "root", keys["admin"][0], host_keys=store, ssh_config=cfg)
    assert (explicit.host, explicit.port, explicit.user) == ("192.0.2.5", 22, "root")
    bare = SshConnection("192.0.2.7", None, None, keys["admin"][0], host_keys=store)
    assert (bare.port, bare.user) == (22, "root")


def test_proxyjump_chains_are_followed_and_pinned_per_hop(tmp_path, keys):
    cfg = _config(
        tmp_path,
        "Host mx1\n  HostName 10.0.0.5\n  ProxyJump outer,inner:2222\n"
        "Host outer\n  HostName 198.51.100.1\n  User jump\n"
        "Host *\n  ProxyJump none\n",
    )
    conn = SshConnection(
        "mx1", 22, "root", keys["admin"][0], host_keys=MemoryHostKeyStore(), ssh_config=cfg
    )
    inner, outer = conn.hops()
    assert (outer.host, outer.user, outer.port, outer.via) == ("198.51.100.1", "jump", 22, None)
    assert (inner.host, inner.port, inner.via) == ("inner", 2222, outer)
    assert inner.pin_host == "198.51.100.1:22/inner"
    assert conn.pin_host == "198.51.100.1:22/inner:2222/10.0.0.5"
    assert outer.operator_identity and not conn.operator_identity


def test_proxyjump_loops_and_proxycommand_are_refused(tmp_path, keys):
    store = MemoryHostKeyStore()
    loop = _config(tmp_path, "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(ConfigError, match="ProxyJump loop"):
        SshConnection("a", 22, "root", keys["admin"][0], host_keys=store, ssh_config=loop)
    # `Host *` naming the jump host itself does not recurse (the jump host is direct)
    star = _config(tmp_path, "Host *\n  ProxyJump gw\n")
    conn = SshConnection("mx1", 22, "root", keys["admin"][0], host_keys=store, ssh_config=star)
    assert [h.host for h in conn.hops()] == ["gw"] and conn.hops()[0].via is None
    proxy = _config(tmp_path, "Host mx1\n  ProxyCommand nc %h %p\n")
    with pytest.raises(ConfigError, match="ProxyCommand"):
        SshConnection("mx1", 22, "root", keys["admin"][0], host_keys=store, ssh_config=proxy)
    odd = _config(tmp_path, "Host p\n  Port x\nHost f\n  ForwardAgent /run/agent.sock\n")
    for host in ("p", "f"):  # one clear line, not a traceback
        with pytest.raises(ConfigError, match=f"ssh {host}: the ssh client config cannot"):
            SshConnection(host, None, None, keys["admin"][0], host_keys=store, ssh_config=odd)


# -- against a real sshd ------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path, keys):
    with SshServer(tmp_path / "sshd", "127.0.0.4", authorized_keys=[keys["operator"][1]]) as srv:
        yield srv


def test_an_alias_reaches_the_server_and_its_identityfile_is_not_penguinctls(
    tmp_path, keys, server
):
    operator_key = tmp_path / "operator_key"
    operator_key.write_text(keys["operator"][0])
    operator_key.chmod(0o600)
    cfg = _config(
        tmp_path,
        f"Host mx-alias\n  HostName {server.address}\n  Port {server.port}\n  User root\n"
        f"  IdentityFile {operator_key}\n",
    )
    store = MemoryHostKeyStore()
    # the server only accepts the operator's key: penguinctl logs in with the server's own key
    # (from its secrets backend), never with the config's IdentityFile or the agent
    admin = SshConnection(
        "mx-alias", None, None, keys["admin"][0], host_keys=store, options=FAST, ssh_config=cfg
    )
    with pytest.raises(SshAuthFailed):
        admin.connect()
    admin.close()
    # the operator's identity is used only for jump hosts penguinctl holds no key for
    jump = SshConnection.jump("ssh://mx-alias", host_keys=store, options=FAST, ssh_config=cfg)
    with jump:
        assert jump.run(["id", "-u"]).stdout == "0\n"
        assert (jump.host, jump.port) == (server.address, server.port)
    assert store.get(server.address, server.port) == ("ssh-ed25519", server.host_key_b64)


# -- the spec ---------------------------------------------------------------------------------
def _spec(tmp_path: Path, servers: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: beta}\n---\n" + servers
    )
    return path


def _server(name: str, tenant: str | None, rest: str) -> str:
    meta = f"{{name: {name}, tenant: {tenant}}}" if tenant else f"{{name: {name}}}"
    return (
        f"apiVersion: penguinctl/v1\nkind: Server\nmetadata: {meta}\nspec:\n"
        f"  hostname: {name}.example.com\n  mail: {{stack: none}}\n{rest}---\n"
    )


STATIC = "  provider: static\n  static: {address: 10.0.0.5}\n"


def test_spec_via_is_checked_across_documents(tmp_path):
    from penguinctl.spec import load_specs

    spec = _spec(
        tmp_path,
        _server("gw", None, STATIC)
        + _server("acme-gw", "acme", STATIC)
        + _server("ok1", "acme", STATIC + "  ssh: {via: gw}\n")
        + _server("ok2", "beta", STATIC + "  ssh: {via: 'ssh://jump@bastion.example.com:2222'}\n")
        + _server("bad1", "beta", STATIC + "  ssh: {via: acme-gw}\n")
        + _server("bad2", "acme", STATIC + "  ssh: {via: nope}\n")
        + _server("bad3", "acme", STATIC + "  ssh: {via: bad3}\n")
        + _server("bad4", None, STATIC + "  ssh: {via: acme-gw}\n")
        + _server("ext", "acme", "  provider: external\n  external: {ips: [192.0.2.1]}\n")
        + _server("bad5", "acme", STATIC + "  ssh: {via: ext}\n")
        + _server("bad6", "acme", STATIC + "  ssh: {via: 'ssh://host:99999'}\n")
        + _server(
            "bad7", "acme", "  provider: external\n  external: {ips: [192.0.2.2]}\n"
            "  ssh: {via: gw}\n"
        ),
    )  # fmt: skip
    with pytest.raises(SpecError) as info:
        load_specs([spec])
    text = {i.message.split(":")[0]: i.message for i in info.value.issues}
    assert "belongs to tenant 'acme', not to tenant 'beta'" in text["server bad1"]
    assert "server 'nope' is not defined" in text["server bad2"]
    assert "loop: bad3 -> bad3" in text["server bad3"]
    assert "not to a shared server" in text["server bad4"]
    assert "external" in text["server bad5"]
    assert "port must be a number" in text["server bad6"]
    assert "an external server has no SSH access" in text["server bad7"]
    assert not any(k in text for k in ("server ok1", "server ok2", "server gw"))


def test_spec_via_is_recorded_and_in_the_json_schema(tmp_path):
    from penguinctl.desired import build_desired
    from penguinctl.resources import ResourceKey
    from penguinctl.spec import json_schema, load_specs

    spec = _spec(
        tmp_path,
        _server("gw", None, "  provider: static\n  static: {address: gw-alias}\n")
        + _server("mx1", "acme", STATIC + "  ssh: {via: gw}\n"),
    )
    specs = load_specs([spec])
    today = date(2026, 11, 23)
    desired = build_desired(specs, recorded={}, today=today, zones_dir=tmp_path / "zones")
    mx1 = desired[ResourceKey("server", "acme", "mx1")].data
    assert mx1["ssh"] == {"via": "gw"} and mx1["static"] == {"address": "10.0.0.5"}
    gw = desired[ResourceKey("server", "", "gw")].data
    assert "ssh" not in gw and gw["ips"] == []  # an alias has no IP of its own in the spec
    via = json_schema()["$defs"]["SshAccess"]["properties"]["via"]
    assert "ssh://" in via["anyOf"][0]["pattern"]
    assert "Server" in via["anyOf"][0]["description"]


def test_recorded_routes_keep_tenants_apart():
    """A route read back from the state store is checked again: a server never goes through
    another tenant's jump Server, loops and unknown or external jump Servers are refused."""
    from penguinctl.errors import ProviderError
    from penguinctl.remote.servers import Endpoint, endpoint_of

    def static(address: str, via: str | None = None) -> dict:
        data = {"provider": "static", "static": {"address": address}}
        return {**data, "ssh": {"via": via}} if via else data

    servers = {
        "gw": ("", static("198.51.100.1")),
        "acme-gw": ("acme", static("198.51.100.2")),
        "ext": ("acme", {"provider": "external", "ips": ["192.0.2.1"]}),
        "loop-a": ("acme", static("10.0.0.1", "loop-b")),
        "loop-b": ("acme", static("10.0.0.2", "loop-a")),
    }
    ok = endpoint_of("mx1", static("10.0.0.5", "gw"), servers, tenant="beta")
    assert ok is not None and isinstance(ok.via, Endpoint) and ok.via.host == "198.51.100.1"
    own = endpoint_of("mx1", static("10.0.0.5", "acme-gw"), servers, tenant="acme")
    assert own is not None and isinstance(own.via, Endpoint)
    host = endpoint_of("mx1", static("10.0.0.5", "ssh://jump@bastion:2222"), servers)
    assert host is not None and host.via == "ssh://jump@bastion:2222"
    for via, tenant, message in [
        ("acme-gw", "beta", "cannot go through server acme-gw of tenant acme"),
        ("nope", "acme", "is not recorded"),
        ("ext", "acme", "is external"),
        ("loop-a", "acme", "loops"),
    ]:
        with pytest.raises(ProviderError, match=message):
            endpoint_of("mx1", static("10.0.0.5", via), servers, tenant=tenant)
