"""The SSH transport, host key pinning and fan-out, against real OpenSSH servers on 127.0.0.x."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import traceback
from pathlib import Path

import pytest
from sshd import SshServer, free_port, keygen

from penguinctl.remote.command import build_command
from penguinctl.remote.errors import (
    CommandTimeout,
    HostKeyChanged,
    RemoteCommandFailed,
    SshAuthFailed,
    SshError,
    SshKeyInvalid,
    SshUnreachable,
)
from penguinctl.remote.fanout import fan_out
from penguinctl.remote.hostkeys import MemoryHostKeyStore, StateHostKeyStore, fingerprint
from penguinctl.remote.ssh import SshConnection, SshOptions, load_private_key

FAST = SshOptions(connect_timeout=5, banner_timeout=5, auth_timeout=5, retries=2, backoff=0.01)
HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; rm -rf {marker}; echo",
    'it\'s "quoted" \\ back',
    "line one\nline two\n",
    "* ? [a-z] ~ $HOME &&|| > {marker}",
    "",
    " -n ",
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("client-keys")
    return {
        "ed25519": keygen(d / "id_ed25519"),
        "rsa_pem": keygen(d / "id_rsa", "rsa", pem=True),
        "stranger": keygen(d / "id_stranger"),
    }


@pytest.fixture(scope="module")
def sudo_shim(tmp_path_factory) -> Path:
    """A ``sudo`` that insists on ``-n --`` (as the transport sends it) and logs its argv count."""
    d = tmp_path_factory.mktemp("shim")
    shim = d / "sudo"
    shim.write_text(
        '#!/bin/sh\n[ "$1" = -n ] && [ "$2" = -- ] || { echo "bad sudo: $*" >&2; exit 97; }\n'
        f'shift 2\necho "$#" >> {d / "sudo.log"}\nexec "$@"\n'
    )
    shim.chmod(0o755)
    return d


def _server(tmp_path_factory, address: str, keys, sudo_shim) -> SshServer:
    authorized = [keys["ed25519"][1], keys["rsa_pem"][1]]
    return SshServer(
        tmp_path_factory.mktemp(f"sshd-{address}"),
        address,
        authorized_keys=authorized,
        path_prefix=sudo_shim,
    )


@pytest.fixture(scope="module")
def host2(tmp_path_factory, keys, sudo_shim):
    with _server(tmp_path_factory, "127.0.0.2", keys, sudo_shim) as srv:
        yield srv


@pytest.fixture(scope="module")
def host3(tmp_path_factory, keys, sudo_shim):
    with _server(tmp_path_factory, "127.0.0.3", keys, sudo_shim) as srv:
        yield srv


@pytest.fixture
def conn(host2, keys):
    with SshConnection(
        host2.address, host2.port, "root", keys["ed25519"][0], host_keys=MemoryHostKeyStore()
    ) as c:
        yield c


@pytest.fixture
def state_engine(state_url):
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(state_url)
    migrate(engine)
    yield engine
    engine.dispose()


# -- commands --------------------------------------------------------------------------------
def test_build_command_quotes_lists_and_wraps_sudo():
    assert build_command(["echo", "a b", "$(x)"]) == "echo 'a b' '$(x)'"
    assert build_command(["ls", "-l"], sudo=True) == "sudo -n -- ls -l"
    assert build_command("a && b", sudo=True) == "sudo -n -- sh -c 'a && b'"
    assert build_command("a | b") == "a | b"
    for bad in ([], "  ", ["a\x00b"], "a\x00"):
        with pytest.raises(ValueError):
            build_command(bad)


@pytest.mark.parametrize("sudo", [False, True])
def test_hostile_list_arguments_arrive_literally(conn, tmp_path, sudo):
    marker = tmp_path / "pwned"
    args = [a.format(marker=marker) for a in HOSTILE]
    res = conn.run(["printf", "%s\\0", *args], sudo=sudo)
    assert res.rc == 0, res.stderr
    assert res.stdout.split("\0")[:-1] == args
    assert not marker.exists()
    assert res.duration > 0


def test_sudo_goes_through_sudo_n(conn, sudo_shim):
    before = (sudo_shim / "sudo.log").read_text() if (sudo_shim / "sudo.log").exists() else ""
    res = conn.run("echo $((6 * 7)) | tr 4 X; echo done >&2", sudo=True)
    assert (res.rc, res.stdout, res.stderr) == (0, "X2\n", "done\n")
    log = (sudo_shim / "sudo.log").read_text()
    assert log[len(before) :] == "3\n"  # sh -c TEXT: one root shell runs the whole text


def test_shell_text_stdin_and_exit_codes(conn):
    res = conn.run("echo out; echo err >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr, res.ok) == (3, "out\n", "err\n", False)
    payload = bytes(range(256)) * 1000
    echoed = conn.run(["sha256sum"], stdin=payload)
    assert echoed.stdout.split()[0] == hashlib.sha256(payload).hexdigest()
    assert conn.run(["cat"], stdin="héllo\n").stdout == "héllo\n"
    assert conn.run(["cat"]).stdout == ""  # no stdin: EOF at once, nothing hangs
    with pytest.raises(RemoteCommandFailed, match=r"`false` exited 1"):
        conn.run(["false"], check=True)


def test_command_timeout_closes_the_channel_and_keeps_the_session(conn):
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"`sleep` did not finish within 0.5s"):
        conn.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - start < 10
    assert conn.run(["echo", "still here"]).stdout == "still here\n"
    with pytest.raises(CommandTimeout):  # a silent process that closed its output still times out
        conn.run("exec >&- 2>&-; sleep 30", timeout=0.5)


# -- files -----------------------------------------------------------------------------------
def test_put_file_is_idempotent_and_checksummed(conn, tmp_path):
    target = tmp_path / "etc" / "app.conf"
    target.parent.mkdir()
    assert conn.checksum(str(target)) is None
    assert conn.put_file(str(target), b"one\n", 0o640) is True
    assert target.read_bytes() == b"one\n"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert conn.checksum(str(target)) == hashlib.sha256(b"one\n").hexdigest()
    assert conn.put_file(str(target), b"one\n", 0o640) is False
    assert conn.put_file(str(target), b"one\n", 0o600) is True  # mode alone is a change
    assert target.stat().st_mode & 0o7777 == 0o600
    assert conn.put_file(str(target), b"two\n", 0o600) is True
    assert target.read_bytes() == b"two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["app.conf"]  # no temp left
    tool = target.parent / "tool"  # set-id bits are set after the data (a write clears them)
    assert conn.put_file(str(tool), b"#!/bin/sh\n", 0o2750) is True
    assert tool.stat().st_mode & 0o7777 == 0o2750


def test_make_directory_over_sftp(conn, tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    conn.make_directory(str(deep), 0o750)
    assert deep.is_dir() and deep.stat().st_mode & 0o7777 == 0o750
    conn.make_directory(str(deep), 0o700)  # exists: only the mode changes
    assert deep.stat().st_mode & 0o7777 == 0o700
    conn.make_directory(str(tmp_path / "a") + "/")  # trailing slash, no mode: left as is
    (tmp_path / "file").write_text("x")
    with pytest.raises(SshError, match=r"cannot create directory .*file/sub"):
        conn.make_directory(str(tmp_path / "file" / "sub"))
    with pytest.raises(SshError, match="not a directory"):
        conn.make_directory(str(tmp_path / "file"))


def test_put_file_replaces_atomically(conn, tmp_path):
    """A reader polling the file during many rewrites only ever sees a whole old or new file."""
    target = tmp_path / "big.bin"
    versions = [bytes([i]) * (2 * 1024 * 1024) for i in range(4)]
    conn.put_file(str(target), versions[0])
    seen: set[bytes] = set()
    torn: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            if data not in versions:
                torn.append(len(data))
            seen.add(data[:1])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for v in versions[1:] * 2:
            conn.put_file(str(target), v)
    finally:
        stop.set()
        thread.join()
    assert torn == []
    assert len(seen) > 1
    assert conn.checksum(str(target)) == hashlib.sha256(versions[-1]).hexdigest()


def test_put_file_with_sudo_and_errors(conn, tmp_path):
    target = tmp_path / "root-owned"
    assert conn.put_file(str(target), b"secret=1\n", 0o600, sudo=True) is True
    assert target.read_bytes() == b"secret=1\n"
    assert target.stat().st_mode & 0o7777 == 0o600
    assert conn.put_file(str(target), b"secret=1\n", 0o600, sudo=True) is False
    assert conn.checksum(str(target), sudo=True) == hashlib.sha256(b"secret=1\n").hexdigest()
    with pytest.raises(SshError, match="no-such-dir/x"):
        conn.put_file(str(tmp_path / "no-such-dir" / "x"), b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root-owned"]


# -- connecting ------------------------------------------------------------------------------
def test_rsa_pem_key_and_unreachable_retries(host3, keys):
    store = MemoryHostKeyStore()
    with SshConnection(host3.address, host3.port, "root", keys["rsa_pem"][0], host_keys=store) as c:
        assert c.run(["id", "-u"]).stdout == "0\n"
    port = free_port("127.0.0.4")
    c = SshConnection("127.0.0.4", port, "root", keys["ed25519"][0], host_keys=store, options=FAST)
    with pytest.raises(
        SshUnreachable, match=rf"root@127.0.0.4:{port}: unreachable after 3 attempts"
    ):
        c.connect()


def test_auth_failure_is_not_retried(host3, keys):
    before = host3.log_text().count("Connection from")
    c = SshConnection(
        host3.address,
        host3.port,
        "root",
        keys["stranger"][0],
        host_keys=MemoryHostKeyStore(),
        options=FAST,
    )
    with pytest.raises(SshAuthFailed, match="authentication failed"):
        c.connect()
    time.sleep(0.2)  # let sshd write its log line
    assert host3.log_text().count("Connection from") - before == 1


def test_pins_on_first_contact(state_engine, host2, keys):
    from sqlmodel import select

    from penguinctl.state.db import session_scope
    from penguinctl.state.models import AuditEvent, HostKeyRow

    store = StateHostKeyStore(state_engine, actor="tester")
    for _ in range(2):
        with SshConnection(host2.address, host2.port, "root", keys["ed25519"][0], host_keys=store):
            pass
    with session_scope(state_engine) as session:
        rows = session.exec(select(HostKeyRow)).all()
        events = session.exec(select(AuditEvent)).all()
        assert [(r.host, r.port, r.key_type, r.key_b64, r.fingerprint) for r in rows] == [
            (host2.address, host2.port, "ssh-ed25519", host2.host_key_b64, host2.fingerprint)
        ]
        assert rows[0].first_seen is not None
        assert [(e.action, e.resource, e.actor, e.details["fingerprint"]) for e in events] == [
            ("hostkey.pinned", f"host/{host2.address}:{host2.port}", "tester", host2.fingerprint)
        ]
    assert store.get(host2.address, host2.port + 1) is None


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_pinned_key_type_is_negotiated_again(tmp_path, keys, key_type):
    """A server with an RSA or ECDSA host key: the pinned type is asked for on reconnect."""
    srv = SshServer(
        tmp_path, "127.0.0.6", authorized_keys=[keys["ed25519"][1]], host_key_type=key_type
    )
    store = MemoryHostKeyStore()
    with srv:
        for _ in range(2):
            with SshConnection(
                srv.address, srv.port, "root", keys["ed25519"][0], host_keys=store
            ) as c:
                c.run(["true"], check=True)
        assert store.get(srv.address, srv.port)[1] == srv.host_key_b64


def test_changed_host_key_is_refused_until_forgotten(
    state_engine, tmp_path_factory, tmp_path, keys, sudo_shim
):
    store = StateHostKeyStore(state_engine, actor="tester")
    marker = tmp_path / "executed"
    with _server(tmp_path_factory, "127.0.0.5", keys, sudo_shim) as srv:
        key = keys["ed25519"][0]
        with SshConnection(srv.address, srv.port, "root", key, host_keys=store) as c:
            c.run(["true"])
        old_fp = srv.fingerprint
        srv.stop()
        srv.new_host_key()
        srv.start()
        new_fp = srv.fingerprint
        assert new_fp != old_fp
        log_start = len(srv.log_text())

        c = SshConnection(srv.address, srv.port, "root", key, host_keys=store, options=FAST)
        with pytest.raises(HostKeyChanged) as info:
            c.run(["touch", str(marker)])
        message = str(info.value)
        assert "\n" not in message
        assert f"{srv.address}:{srv.port}" in message
        assert old_fp in message and new_fp in message
        assert "`penguinctl server trust-hostkey SERVER`" in message
        assert info.value.exit_code == 5
        assert not marker.exists()
        time.sleep(0.2)
        assert "Accepted publickey" not in srv.log_text()[log_start:]  # refused before auth
        assert store.get(srv.address, srv.port)[1] != srv.host_key_b64  # the pin is untouched

        assert store.forget(srv.address, srv.port) is True
        assert store.forget(srv.address, srv.port) is False
        with SshConnection(srv.address, srv.port, "root", key, host_keys=store) as c:
            c.run(["touch", str(marker)])
        assert marker.exists()
        assert store.get(srv.address, srv.port) == ("ssh-ed25519", srv.host_key_b64)

    from sqlmodel import col, select

    from penguinctl.state.db import session_scope
    from penguinctl.state.models import AuditEvent

    with session_scope(state_engine) as session:
        actions = session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))).all()
    assert actions == ["hostkey.pinned", "hostkey.forgotten", "hostkey.pinned"]


def test_memory_store_pin_never_overwrites():
    _pin_never_overwrites(MemoryHostKeyStore())


def test_state_store_pin_never_overwrites(state_engine):
    _pin_never_overwrites(StateHostKeyStore(state_engine))


def _pin_never_overwrites(store) -> None:
    a = "AAAAC3NzaC1lZDI1NTE5AAAAIBJB7ZvYQT8KxyfV3Vpg6haZeiyzX014TJuzAGBkd/Tx"
    b = "AAAAC3NzaC1lZDI1NTE5AAAAIAAB7ZvYQT8KxyfV3Vpg6haZeiyzX014TJuzAGBkd/Tx"
    store.pin("h", 22, "ssh-ed25519", a)
    store.pin("h", 22, "ssh-ed25519", a)  # same key: no-op
    with pytest.raises(
        HostKeyChanged, match=re.escape(f"h:22 changed: pinned ssh-ed25519 {fingerprint(a)},")
    ):
        store.pin("h", 22, "ssh-ed25519", b)
    assert store.get("h", 22) == ("ssh-ed25519", a)


# -- fan-out ---------------------------------------------------------------------------------
def _task(keys, store, tmp_path):
    def task(host: tuple[str, int]) -> bool:
        with SshConnection(*host, "root", keys["ed25519"][0], host_keys=store, options=FAST) as c:
            changed = c.put_file(str(tmp_path / f"{host[0]}.conf"), b"x=1\n")
            c.run(["true"], check=True)
            return changed

    return task


def test_fan_out_isolates_an_unreachable_host(host2, host3, keys, tmp_path):
    dead = ("127.0.0.4", free_port("127.0.0.4"))
    hosts = [(host2.address, host2.port), dead, (host3.address, host3.port)]
    store = MemoryHostKeyStore()
    seen: list[str] = []

    def name(h):
        return f"{h[0]}:{h[1]}"

    summary = fan_out(
        hosts,
        _task(keys, store, tmp_path),
        parallel=3,
        progress=lambda r: seen.append(r.host),
        name=name,
    )
    assert [r.status for r in summary.results] == ["changed", "unreachable", "changed"]
    assert "unreachable after 3 attempts" in summary.results[1].error
    assert sorted(seen) == sorted(name(h) for h in hosts)
    assert summary.ok is False and summary.stopped_early is False
    data = summary.to_json()
    assert data["counts"] == {"ok": 0, "changed": 2, "failed": 0, "unreachable": 1, "skipped": 0}
    assert [h["host"] for h in data["hosts"]] == [name(h) for h in hosts]
    again = fan_out(hosts, _task(keys, store, tmp_path), parallel=3, name=name)
    assert [r.status for r in again.results] == ["ok", "unreachable", "ok"]


def test_fan_out_max_fail_percent_stops_scheduling(host2, host3, keys, tmp_path):
    dead = [("127.0.0.4", free_port("127.0.0.4")) for _ in range(3)]
    hosts = [*dead, (host2.address, host2.port), (host3.address, host3.port)]
    summary = fan_out(
        hosts, _task(keys, MemoryHostKeyStore(), tmp_path), parallel=1, max_fail_percent=30
    )
    assert [r.status for r in summary.results] == [
        "unreachable",
        "unreachable",
        "skipped",
        "skipped",
        "skipped",
    ]
    assert summary.stopped_early is True
    assert not (tmp_path / "127.0.0.2.conf").exists()


def test_fan_out_lets_running_hosts_finish():
    started: list[str] = []
    release = threading.Event()

    def task(host: str) -> None:
        started.append(host)
        if host == "bad":
            raise RuntimeError("boom")
        release.wait(5)

    def progress(result) -> None:
        if result.host == "bad":
            release.set()

    summary = fan_out(
        ["slow", "bad", "c", "d"], task, parallel=2, max_fail_percent=0, progress=progress
    )
    assert [(r.host, r.status) for r in summary.results] == [
        ("slow", "ok"),
        ("bad", "failed"),
        ("c", "skipped"),
        ("d", "skipped"),
    ]
    assert summary.results[1].error == "RuntimeError: boom"
    assert sorted(started) == ["bad", "slow"]


# -- secrets ---------------------------------------------------------------------------------
def test_private_key_never_appears_in_errors_or_logs(host3, keys, caplog):
    caplog.set_level(logging.DEBUG)
    stranger, good = keys["stranger"][0], keys["ed25519"][0]
    texts: list[str] = []

    def capture(fn) -> None:
        try:
            fn()
        except Exception as exc:
            texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])
        else:
            raise AssertionError("expected an error")

    store = MemoryHostKeyStore()
    capture(
        lambda: SshConnection(
            host3.address, host3.port, "root", stranger, host_keys=store
        ).connect()
    )
    truncated = good[: len(good) // 2]
    capture(lambda: SshConnection(host3.address, host3.port, "root", truncated, host_keys=store))
    capture(lambda: load_private_key(good.replace("A", "B", 5)))
    with SshConnection(host3.address, host3.port, "root", good, host_keys=store) as c:
        texts.append(repr(c))
        c.run(["true"])
        capture(lambda: c.run(["false"], check=True))
    texts.append(caplog.text)
    assert caplog.text  # paramiko and penguinctl did log
    with pytest.raises(SshKeyInvalid):
        load_private_key(truncated)
    for key in (stranger, good):
        body = [line for line in key.splitlines() if line and "PRIVATE KEY" not in line]
        for text in texts:
            for line in body:
                assert line[:24] not in text
