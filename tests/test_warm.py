"""Warm start (penguinctl.warm): a read-only command run by the warm server's child prints the
same, exits the same and sees the same tenant walls as the command run cold; the server steps
aside when the code under it changes, leaves when idle, and trusts no one else's directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from apikit import tenant_spec, wait_for

from penguinctl.warm import client, protocol


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class Warm:
    """A private runtime directory (short: a socket path has ~100 bytes) and the state of two
    tenants, initech and globex; servers started under it are stopped at the end."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="pw-", dir="/tmp"))
        self.home = home
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(self.run_dir))
        monkeypatch.setenv("PENGUINCTL_HOME", str(home))
        monkeypatch.setenv("PENGUINCTL_WARM", "1")
        monkeypatch.setenv("PENGUINCTL_WARM_IDLE", "120")
        clock = home.parent / "clock"
        clock.write_text("2026-12-01T12:00:00+00:00\n")  # one instant: ages print the same
        monkeypatch.setenv("PENGUINCTL_CLOCK_FILE", str(clock))
        monkeypatch.delenv("PENGUINCTL_STATE", raising=False)
        monkeypatch.delenv("PENGUINCTL_API_URL", raising=False)

    def cold(self, *argv: str) -> tuple[int, str, str]:
        env = {**os.environ, "PENGUINCTL_WARM": "0"}
        done = subprocess.run(
            [sys.executable, "-m", "penguinctl", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout, done.stderr

    def socket(self) -> Path:
        path = protocol.socket_path()
        assert path is not None
        return Path(path)

    def server_pid(self) -> int:
        """The pid in the server's lock file; 0 while a new server has not written it yet."""
        text = Path(str(self.socket()) + ".lock").read_text().strip()
        return int(text) if text.isdecimal() else 0

    def start(self) -> int:
        """The first command runs cold and starts the server; the server's pid once it listens."""
        assert client.run(["get", "tenants"]) is None
        wait_for(self.socket().exists, "the warm server to listen", timeout=60)
        return self.server_pid()

    def stop(self) -> None:
        for lock in self.run_dir.rglob("*.lock"):
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(lock.read_text()), signal.SIGTERM)
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture
def warm(monkeypatch, tmp_path):
    w = Warm(monkeypatch, tmp_path / "home")
    for tenant in ("initech", "globex"):
        (tmp_path / f"{tenant}.yaml").write_text(tenant_spec(tenant, domains=2))
    rc, _, err = w.cold(
        "apply", "-f", str(tmp_path / "initech.yaml"), "-f", str(tmp_path / "globex.yaml"), "--yes"
    )
    assert rc == 0, err
    try:
        yield w
    finally:
        w.stop()


def test_command_lines_that_run_warm():
    assert protocol.read_only(["get", "domains"])
    assert protocol.read_only(["-o", "json", "get", "domains"])
    assert protocol.read_only(["--state", "sqlite:///x.db", "describe", "domain", "a.example"])
    assert protocol.read_only(["dkim", "status", "a.example"])
    assert protocol.read_only(["status"])
    assert not protocol.read_only(["dkim", "rotate"])
    assert not protocol.read_only(["-o", "get", "apply"])  # `get` is -o's value here
    assert not protocol.read_only(["apply", "-f", "get"])
    assert not protocol.read_only([])
    assert not protocol.read_only(["--", "get"])


def test_requests_round_trip_and_malformed_ones_are_refused():
    request = protocol.Request(
        ["get", "domains", "--tenant", "a=b"],
        {"PATH": "/bin", "X": "with=equals", "EMPTY": ""},
        "/tmp/dir with spaces",
        0o022,
        ["utf-8", "strict", "utf-8", "strict", "utf-8", "backslashreplace"],
    )
    frame = protocol.encode(request)
    back = protocol.decode(frame[4:])
    assert protocol.header_size(frame[:4]) == len(frame) - 4
    assert (back.argv, back.env, back.cwd, back.umask, back.streams) == (
        request.argv,
        request.env,
        request.cwd,
        request.umask,
        request.streams,
    )
    for bad in (b"", b"x", b"2\0get", b"1\0get\0" + b"5\0A=1", frame[4:-40], b"0\0" * 3):
        with pytest.raises(ValueError):
            protocol.decode(bad)
    with pytest.raises(ValueError):
        protocol.header_size((protocol.MAX_REQUEST + 1).to_bytes(4, "big"))


def test_on_by_default_off_in_ci_and_when_asked():
    assert protocol.enabled({})
    assert not protocol.enabled({"CI": "true"})
    assert protocol.enabled({"CI": "true", "PENGUINCTL_WARM": "1"})
    assert not protocol.enabled({"PENGUINCTL_WARM": "off"})
    assert protocol.enabled({"CI": "false"})


def test_warm_runs_print_and_exit_as_cold_runs_do(warm, capfd):
    """Every case runs cold (its own process) and warm (the server's child, writing to this
    process's descriptors): the same standard output, standard error and exit code. The tenant
    filter holds warm as it does cold: globex's listing names none of initech's domains."""
    pid = warm.start()
    capfd.readouterr()
    cases = [
        ["get", "domains"],
        ["get", "domains", "-o", "json"],
        ["get", "domains", "--tenant", "globex"],
        ["-o", "json", "get", "domains", "-t", "initech"],
        ["describe", "domain", "globex-0.example"],
        ["dkim", "status"],
        ["dkim", "status", "initech-1.example", "-o", "json"],
        ["get", "nosuchkind"],  # an error: exit 2 and its one line
        ["get", "domains", "--bogus"],  # a usage error from the parser
        ["describe", "domain", "nowhere.example"],
    ]
    for argv in cases:
        code = client.run(argv)
        out, err = capfd.readouterr()
        assert code is not None, f"{argv} did not run warm: {err}"
        assert (code, out, err) == warm.cold(*argv), argv
    assert _pid_alive(pid)
    code = client.run(["get", "domains", "--tenant", "globex"])
    out, _ = capfd.readouterr()
    assert code == 0 and "globex-0.example" in out and "initech" not in out


def test_server_environment_is_the_callers(warm, capfd, tmp_path, monkeypatch):
    """The child takes the caller's environment and directory, not the server's: a second
    home (another tenant's state) is read when the caller names it."""
    warm.start()
    other = tmp_path / "other-home"
    (tmp_path / "umbrella.yaml").write_text(tenant_spec("umbrella", domains=1))
    monkeypatch.setenv("PENGUINCTL_HOME", str(other))
    rc, _, err = warm.cold("apply", "-f", str(tmp_path / "umbrella.yaml"), "--yes")
    assert rc == 0, err
    capfd.readouterr()
    monkeypatch.chdir(tmp_path)
    assert client.run(["get", "domains", "-o", "json"]) == 0
    out, _ = capfd.readouterr()
    assert "umbrella-0.example" in out and "initech" not in out and "globex" not in out


def test_a_changed_install_makes_the_server_step_aside(warm, capfd, monkeypatch, tmp_path):
    """A directory of the server's import path changes (a package installed): the next request
    is answered "stale" and runs cold, the server leaves, and the next command starts a new one."""
    extra = tmp_path / "site"
    extra.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(extra))  # on the server's path, and part of its key
    pid = warm.start()
    assert client.run(["get", "tenants"]) == 0
    time.sleep(0.05)  # a distinct mtime on filesystems with coarse timestamps
    (extra / "newpkg.py").write_text("")
    assert client.run(["get", "tenants"]) is None  # stale: the caller runs it
    wait_for(lambda: not _pid_alive(pid), "the stale server to leave", timeout=60)
    assert client.run(["get", "tenants"]) is None  # no server: cold, and one is started
    wait_for(warm.socket().exists, "a new server", timeout=60)
    assert warm.server_pid() != pid
    assert client.run(["get", "tenants"]) == 0
    capfd.readouterr()


def test_an_idle_server_leaves(warm, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_WARM_IDLE", "1")
    pid = warm.start()
    wait_for(lambda: not _pid_alive(pid), "the idle server to leave", timeout=60)
    assert not warm.socket().exists()


def test_a_runtime_directory_others_can_enter_is_not_used(monkeypatch, tmp_path):
    run_dir = Path(tempfile.mkdtemp(prefix="pw-", dir="/tmp"))
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(run_dir))
        monkeypatch.setenv("PENGUINCTL_WARM", "1")
        (run_dir / "penguinctl").mkdir(mode=0o755)
        os.chmod(run_dir / "penguinctl", 0o755)
        assert protocol.socket_path() is None
        assert client.run(["get", "domains"]) is None  # cold, and no server started
        assert list((run_dir / "penguinctl").iterdir()) == []
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_the_socket_is_its_users_only(warm):
    warm.start()
    sock = warm.socket()
    assert sock.stat().st_mode & 0o077 == 0
    assert sock.parent.stat().st_mode & 0o077 == 0


LAUNCHER = [sys.executable, "-c", "from penguinctl.launcher import main; main()"]


def _launcher_server(env: dict[str, str]) -> int:
    """The pid of the warm server that commands run as ``LAUNCHER`` in ``env`` use: a first
    command runs cold and starts it; returned once it listens."""
    first = subprocess.run([*LAUNCHER, "get", "tenants"], env=env, capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr
    path = subprocess.run(
        [sys.executable, "-c", "from penguinctl.warm.protocol import socket_path as p; print(p())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wait_for(Path(path).exists, "the warm server to listen", timeout=60)
    return int(Path(path + ".lock").read_text())


def test_signals_reach_the_warm_command(warm, tmp_path):
    """A signal to the client (SIGTERM here; SIGINT, SIGHUP and SIGQUIT go the same way)
    reaches the command in the server's child: a `get` waiting for a locked state store dies of
    it, the client exits 128 + 15 as a shell reports it, and the server carries on. (SIGINT
    would be handled only when SQLite's busy wait ends, 30 s later, cold or warm alike.)"""
    env = dict(os.environ)
    server = _launcher_server(env)
    db = sqlite3.connect(warm.home / "state.db", timeout=5)
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("BEGIN EXCLUSIVE")
    db.execute("UPDATE alembic_version SET version_num = version_num")
    try:
        proc = subprocess.Popen(
            [*LAUNCHER, "get", "domains"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        children = f"/proc/{server}/task/{server}/children"

        def command_running() -> bool:  # the spare that took it, and a fresh spare
            return len(Path(children).read_text().split()) >= 2

        wait_for(command_running, "the warm command to start", timeout=60)
        time.sleep(0.5)  # inside the state store's busy wait
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        db.rollback()
        db.close()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert _pid_alive(server)
    again = subprocess.run(
        [*LAUNCHER, "get", "domains"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and "globex-0.example" in again.stdout


def test_a_spare_whose_server_died_leaves_and_a_new_server_takes_over(warm, capfd):
    """SIGKILL to the server: its spare notices within seconds and leaves (no orphan holds the
    socket), even when the server died while the spare was still getting ready; the next
    command runs cold and starts a new server."""
    pid = warm.start()
    spare = wait_for(
        lambda: Path(f"/proc/{pid}/task/{pid}/children").read_text().split(),
        "the server's spare",
        timeout=60,
    )
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _pid_alive(pid), "the server to die", timeout=30)
    wait_for(lambda: not _pid_alive(int(spare[0])), "the orphaned spare to leave", timeout=60)
    assert client.run(["get", "tenants"]) is None  # nobody listens: cold, and a new server
    wait_for(lambda: warm.server_pid() not in (0, pid), "a new server", timeout=60)
    wait_for(lambda: client.run(["get", "tenants"]) == 0, "the new server to answer", timeout=60)
    capfd.readouterr()


def test_a_server_whose_spares_keep_dying_leaves():
    """A spare that dies before it takes a connection is replaced, but not forever: after
    three in a row the server leaves (a broken install must not fork in a loop)."""
    from penguinctl.warm.server import MAX_FAILED_SPARES, Server

    server = Server("/nonexistent/warm.sock", idle=60)
    for _ in range(MAX_FAILED_SPARES):
        assert not server.stale
        pid = os.fork()
        if pid == 0:
            os._exit(1)
        pidfd = os.pidfd_open(pid)
        server.children[pidfd] = pid
        server.spare = pid
        server.selector.register(pidfd, 1, None)
        server.reap(pidfd)
        assert server.spare is None
    assert server.stale


def _on_a_terminal(cmd: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """``cmd`` with a pseudo-terminal (100 columns) for its standard streams: exit, output."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=120), out


def test_on_a_terminal_warm_output_is_the_cold_output(warm):
    """On a terminal (rich's boxes, colours and the terminal's width), a warm command writes
    what the cold one writes: the child draws on the caller's terminal, sized as it is."""
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    server = _launcher_server(env)
    children = Path(f"/proc/{server}/task/{server}/children")
    for argv in (["get", "domains"], ["dkim", "status"]):
        spare = wait_for(lambda: children.read_text().split(), "a spare", timeout=60)
        code, out = _on_a_terminal([*LAUNCHER, *argv], env)
        took = spare[0]
        wait_for(  # the spare took it (ran it warm) and left; another waits
            lambda took=took: took not in children.read_text().split(), "the spare to leave", 60
        )
        cold_code, cold_out = _on_a_terminal([*LAUNCHER, *argv], {**env, "PENGUINCTL_WARM": "0"})
        assert (code, out) == (cold_code, cold_out), argv
        assert "\x1b[" in out.decode() and "─" in out.decode()  # drawn for a terminal
