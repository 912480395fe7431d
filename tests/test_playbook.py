"""The playbook engine against real OpenSSH servers on several 127.0.0.x addresses.

Every "host" shares this machine's filesystem, so each works under its own directory. The hosts'
``dpkg-query``, ``apt-get``, ``docker`` and ``sudo`` are recording shims first on the session's
PATH (one shim directory per host, holding that host's package and container state).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sshd import SshServer, free_port, keygen

from penguinctl.playbook import load_playbook, run_playbook
from penguinctl.playbook.loader import parse_playbook
from penguinctl.providers.secrets.base import SecretValue
from penguinctl.remote.errors import HostKeyChanged
from penguinctl.remote.fanout import fan_out
from penguinctl.remote.hostkeys import MemoryHostKeyStore
from penguinctl.remote.ssh import SshConnection, SshOptions

FAST = SshOptions(connect_timeout=3, banner_timeout=5, auth_timeout=5, retries=0)
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
TOKEN = "tok-9f8e7d6c5b4a-secret"

SHIMS = {
    "dpkg-query": r"""#!/bin/sh
d=$(dirname "$0"); rc=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done; shift
for p in "$@"; do
  if grep -qx "$p" "$d/installed" 2>/dev/null; then printf '%s\tii \n' "$p"
  else echo "dpkg-query: no packages found matching $p" >&2; rc=1; fi
done
exit $rc
""",
    "apt-get": r"""#!/bin/sh
d=$(dirname "$0"); echo "$DEBIAN_FRONTEND apt-get $*" >> "$d/apt.log"
[ "$1" = install ] || exit 0
while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done; shift
for p in "$@"; do echo "$p" >> "$d/installed"; done
""",
    "docker": r"""#!/bin/sh
d=$(dirname "$0"); echo "docker $*" >> "$d/docker.log"
case "$*" in
  *" up -d"*) touch "$d/running" ;;
  *" ps --status running -q"*) [ -f "$d/running" ] && echo 0123456789ab ;;
esac
exit 0
""",
    "sudo": r"""#!/bin/sh
[ "$1" = -n ] && [ "$2" = -- ] || { echo "bad sudo: $*" >&2; exit 97; }
shift 2; echo "$1" >> "$(dirname "$0")/sudo.log"; exec "$@"
""",
}

PLAYBOOK = """\
name: all-ops
vars: {app: "{{ root }}/app", enabled: "no"}
steps:
  - name: packages
    package: {names: [curl, restic]}
  - name: app dir
    directory: {path: "{{ app }}", mode: "0750"}
  - name: config
    file: {path: "{{ app }}/app.conf", content: "port={{ port }}\\ntoken={{ token }}\\n"}
  - name: secret env
    file: {path: "{{ app }}/secret.env", content: "KEY={{ token }}\\n", mode: "0600", secret: true}
  - name: compose file
    file: {path: "{{ app }}/docker-compose.yml", template: "{{ compose_template }}"}
  - name: sysctl line
    line: {path: "{{ app }}/sysctl.conf", line: "a=1", regexp: "^a="}
  - name: init once
    command:
      run: [sh, -c, 'echo init >> "$1/init.log"', sh, "{{ app }}"]
      creates: "{{ app }}/init.log"
  - name: stamp
    command:
      run: [sh, -c, 'echo "$2" > "$1/stamp"', sh, "{{ app }}", "{{ port }}"]
      unless: [sh, -c, 'test "$(cat "$1/stamp")" = "$2"', sh, "{{ app }}", "{{ port }}"]
  - name: stack up
    compose_up: {project_dir: "{{ app }}", project: demo, env_file: secret.env}
  - name: api answers
    wait_url: {url: "{{ url }}", status: [200, 401], timeout: 20, interval: 0.2}
  - name: disabled
    command: {run: ["false"]}
    when: "{{ enabled }}"
"""


@pytest.fixture(scope="module")
def client_key(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("keys") / "id_ed25519")


def _shim_dir(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for name, text in SHIMS.items():
        (base / name).write_text(text)
        (base / name).chmod(0o755)
    return base


@pytest.fixture
def hosts(tmp_path, client_key):
    servers = []
    try:
        for address in ADDRESSES:
            shims = _shim_dir(tmp_path / "shims" / address)
            srv = SshServer(
                tmp_path / "sshd" / address,
                address,
                authorized_keys=[client_key[1]],
                path_prefix=shims,
            )
            srv.shims = shims  # type: ignore[attr-defined]
            servers.append(srv.start())
        yield servers
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture(scope="module")
def web():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "all-ops.yaml"
    path.write_text(PLAYBOOK)
    templates = tmp_path / "templates"
    (templates / "demo").mkdir(parents=True)
    (templates / "demo" / "compose.yml.j2").write_text(
        "services:\n  web:\n    image: nginx:1.27\n    ports: ['{{ port }}:80']\n"
    )
    return load_playbook(str(path)), templates


class Counting:
    """Counts the commands sent over a connection."""

    def __init__(self, conn):
        self.conn, self.commands = conn, 0
        self.host = conn.host

    def run(self, *args, **kwargs):
        self.commands += 1
        return self.conn.run(*args, **kwargs)

    def write_file(self, *args, **kwargs):
        return self.conn.write_file(*args, **kwargs)

    def make_directory(self, *args, **kwargs):  # over SFTP: not a command
        return self.conn.make_directory(*args, **kwargs)


def _variables(tmp_path, srv, web, **extra):
    return {
        "root": str(tmp_path / "roots" / srv.address),
        "port": "8080",
        "token": SecretValue(TOKEN),
        "compose_template": "demo/compose.yml.j2",
        "url": web,
        **extra,
    }


def _fan(hosts, store, client_key, fn, **kw):
    def task(srv):
        with SshConnection(
            srv.address, srv.port, "root", client_key[0], host_keys=store, options=FAST
        ) as conn:
            return fn(srv, conn)

    return fan_out(hosts, task, parallel=len(hosts), name=lambda s: s.address, **kw)


def _statuses(result):
    return {s.name: s.status for s in result.steps}


def test_first_run_changes_and_second_changes_nothing_on_every_host(
    hosts, client_key, book, tmp_path, web
):
    playbook, templates = book
    store = MemoryHostKeyStore()
    counts = {}

    def run(srv, conn, check=False):
        counted = Counting(conn)
        res = run_playbook(
            counted, playbook, _variables(tmp_path, srv, web), templates_dir=templates, check=check
        )
        counts[srv.address] = counted.commands
        return res

    first = _fan(hosts, store, client_key, run)
    assert first.counts["changed"] == len(hosts), first.to_json()
    for r in first.results:
        statuses = _statuses(r.value)
        assert statuses.pop("api answers") == "ok"
        assert statuses.pop("disabled") == "ok"
        assert set(statuses.values()) == {"changed"}, r.value.to_json()
    second = _fan(hosts, store, client_key, run)
    assert second.counts["ok"] == len(hosts), second.to_json()
    for r in second.results:
        assert not r.value.changed and r.value.failed is None
        # one batched fact round trip + the curl poll of wait_url
        assert counts[r.host] == 2, counts
    check = _fan(hosts, store, client_key, lambda s, c: run(s, c, check=True))
    assert check.counts["ok"] == len(hosts)

    for srv in hosts:
        app = tmp_path / "roots" / srv.address / "app"
        assert (app / "app.conf").read_text() == f"port=8080\ntoken={TOKEN}\n"
        assert oct((app / "app.conf").stat().st_mode & 0o777) == "0o644"
        assert oct((app / "secret.env").stat().st_mode & 0o777) == "0o600"
        assert oct(app.stat().st_mode & 0o777) == "0o750"
        assert (app / "sysctl.conf").read_text() == "a=1\n"
        assert (app / "init.log").read_text() == "init\n"  # ran exactly once
        assert (app / "stamp").read_text() == "8080\n"
        shims = srv.shims
        assert sorted((shims / "installed").read_text().split()) == ["curl", "restic"]
        assert (shims / "apt.log").read_text().count("noninteractive apt-get install") == 1
        ups = [ln for ln in (shims / "docker.log").read_text().splitlines() if " up -d" in ln]
        assert ups == ["docker compose -p demo -f docker-compose.yml up -d"]
        assert (app / ".penguinctl-compose.sha256").exists()

    # a changed variable changes exactly the steps that depend on it, once
    def rerun(srv, conn):
        return run_playbook(
            conn, playbook, _variables(tmp_path, srv, web, port="9090"), templates_dir=templates
        )

    third = _fan(hosts, store, client_key, rerun)
    for r in third.results:
        changed = {n for n, s in _statuses(r.value).items() if s == "changed"}
        assert changed == {"config", "compose file", "stamp", "stack up"}, r.value.to_json()


def test_check_mode_changes_nothing_and_diffs_mask_secrets(hosts, client_key, book, tmp_path, web):
    playbook, templates = book
    srv = hosts[0]
    store = MemoryHostKeyStore()
    root = tmp_path / "roots" / srv.address

    def go(check, **extra):
        with SshConnection(
            srv.address, srv.port, "root", client_key[0], host_keys=store, options=FAST
        ) as conn:
            return run_playbook(
                conn,
                playbook,
                _variables(tmp_path, srv, web, **extra),
                check=check,
                templates_dir=templates,
            )

    dry = go(True)
    assert not root.exists()
    assert not (srv.shims / "apt.log").exists()
    assert " up " not in (srv.shims / "docker.log").read_text()  # only `ps`, a read
    by = {s.name: s for s in dry.steps}
    assert by["packages"].status == "changed" and "restic" in by["packages"].detail
    assert by["config"].status == "changed"
    assert "+token=******" in by["config"].diff and TOKEN not in by["config"].diff
    assert by["secret env"].diff is None and "content hidden" in by["secret env"].detail
    assert by["stack up"].status == "changed"
    assert by["api answers"].status == "ok" and "would wait" in by["api answers"].detail

    assert not go(False).failed
    (root / "app" / "app.conf").write_text("port=1\ntoken=old\n")
    (root / "app" / "secret.env").write_text("KEY=old-secret-value\n")
    dry = go(True)
    by = {s.name: s for s in dry.steps}
    assert {n for n, s in by.items() if s.status == "changed"} == {
        "config",
        "secret env",
        "stack up",
    }
    assert "-port=1\n" in by["config"].diff and "+port=8080\n" in by["config"].diff
    assert "old-secret-value" not in repr(dry.to_json())
    assert (root / "app" / "app.conf").read_text() == "port=1\ntoken=old\n"  # untouched


def test_failed_step_stops_the_run_and_render_errors_name_the_step(hosts, client_key, tmp_path):
    srv = hosts[0]
    path = tmp_path / "fails.yaml"
    path.write_text(
        "name: fails\nsteps:\n"
        "  - {name: one, directory: {path: '{{ root }}/d'}}\n"
        "  - {name: boom, command: {run: [sh, -c, 'echo broken >&2; exit 3']}}\n"
        "  - {name: never, directory: {path: '{{ root }}/never'}}\n"
    )
    root = tmp_path / "r"
    with SshConnection(
        srv.address, srv.port, "root", client_key[0], host_keys=MemoryHostKeyStore()
    ) as conn:
        res = run_playbook(conn, load_playbook(str(path)), {"root": str(root)})
        assert [s.status for s in res.steps] == ["changed", "failed"]
        assert res.failed.name == "boom" and "exited 3: broken" in res.failed.detail
        assert not (root / "never").exists()

        res = run_playbook(conn, load_playbook(str(path)), {})
        assert [s.status for s in res.steps] == ["failed"]
        assert f"{path}:3:5" in res.failed.detail and "'root' is undefined" in res.failed.detail


def test_hostile_values_stay_literal_and_sudo_wraps_every_command(hosts, client_key, tmp_path):
    srv = hosts[1]
    marker = tmp_path / "pwned"
    weird = str(tmp_path / f"it's a $(touch {marker}) `touch {marker}` dir")
    with SshConnection(
        srv.address, srv.port, "root", client_key[0], host_keys=MemoryHostKeyStore()
    ) as conn:
        playbook = load_playbook("example")
        first = run_playbook(conn, playbook, {"base": weird}, sudo=True)
        assert first.failed is None and first.changed, first.to_json()
        again = run_playbook(conn, playbook, {"base": weird}, sudo=True)
        assert not again.changed, again.to_json()
    assert not marker.exists()
    conf = Path(weird) / srv.address / "app.conf"
    assert f"root = {Path(weird) / srv.address}" in conf.read_text()
    assert (Path(weird) / srv.address / "VERSION").read_text() == "1.0\n"
    # every command went through sudo: first run 6 (facts, mkdir, install the upload, three
    # commands with their guards), second run 1 (the batched facts)
    assert (srv.shims / "sudo.log").read_text().split() == ["sh"] * 7


def test_example_playbook_round_trips(hosts, client_key, tmp_path):
    """The fan-out benchmark's playbook: the first run is four commands (the batched facts and
    the three commands; the directory and the file go over SFTP), a no-change run one."""
    srv = hosts[0]
    counts = []
    with SshConnection(
        srv.address, srv.port, "root", client_key[0], host_keys=MemoryHostKeyStore()
    ) as conn:
        for _ in range(2):
            counted = Counting(conn)
            res = run_playbook(counted, load_playbook("example"), {"base": str(tmp_path / "ex")})
            assert res.failed is None, res.to_json()
            counts.append(counted.commands)
    assert counts == [4, 1]


def test_changed_host_key_is_refused(hosts, client_key, tmp_path):
    srv = hosts[0]
    store = MemoryHostKeyStore()
    base = tmp_path / "hk"

    def task(s):
        with SshConnection(
            s.address, s.port, "root", client_key[0], host_keys=store, options=FAST
        ) as conn:
            return run_playbook(conn, load_playbook("example"), {"base": str(base)})

    assert fan_out([srv], task).counts["changed"] == 1
    (base / srv.address / "VERSION").unlink()
    srv.stop()
    srv.new_host_key()
    srv.start()
    summary = fan_out([srv], task, name=lambda s: s.address)
    assert summary.results[0].status == "failed"
    assert "host key" in summary.results[0].error and "changed" in summary.results[0].error
    assert not (base / srv.address / "VERSION").exists()  # nothing ran
    with pytest.raises(HostKeyChanged):
        task(srv)


def test_unreachable_host_fails_alone_and_max_fail_stops_early(hosts, client_key, tmp_path):
    dead = [("127.0.0.9", free_port("127.0.0.9")), ("127.0.0.10", free_port("127.0.0.10"))]
    good = [(s.address, s.port) for s in hosts]
    store = MemoryHostKeyStore()

    def task(target):
        with SshConnection(
            target[0], target[1], "root", client_key[0], host_keys=store, options=FAST
        ) as conn:
            return run_playbook(conn, load_playbook("example"), {"base": str(tmp_path / "b")})

    summary = fan_out([*good, dead[0]], task, parallel=4, name=lambda t: t[0])
    status = {r.host: r.status for r in summary.results}
    assert status == {**{a: "changed" for a, _ in good}, "127.0.0.9": "unreachable"}

    summary = fan_out([*dead, *good], task, parallel=1, max_fail_percent=30, name=lambda t: t[0])
    assert [r.status for r in summary.results] == [
        "unreachable",
        "unreachable",
        "skipped",
        "skipped",
        "skipped",
    ]
    assert summary.stopped_early


BAD = {
    "syntax": ("name: x\nsteps:\n  - name: a\n    directory: {path: /x\n", ":5:1", "flow mapping"),
    "unknown-field": (
        "name: x\nsteps:\n  - name: a\n    directory: {path: /x, mdoe: '0755'}\n",
        ":4:27",
        "unknown field 'mdoe'",
    ),
    "two-ops": (
        "name: x\nsteps:\n  - name: a\n    directory: {path: /x}\n"
        "    file: {path: /y, content: a}\n",
        ":3:5",
        "exactly one operation",
    ),
    "no-op": ("name: x\nsteps:\n  - name: a\n", ":3:5", "this one has none"),
    "bad-mode": (
        "name: x\nsteps:\n  - name: a\n    directory: {path: /x, mode: 755}\n",
        ":4:27",
        "quote a mode",
    ),
    "file-both": (
        "name: x\nsteps:\n- name: a\n  file: {path: /x, content: a, template: b}\n",
        ":4:3",
        "exactly one of 'template' or 'content'",
    ),
    "dup-key": ("name: x\nname: y\nsteps: []\n", ":2:1", "duplicate"),
    "run-string": (
        "name: x\nsteps:\n  - name: a\n    command: {run: 'rm -rf /'}\n",
        ":4:15",
        "valid list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_loader_rejects_bad_playbooks_with_file_line_col(case):
    from penguinctl.errors import SpecError

    text, where, what = BAD[case]
    with pytest.raises(SpecError) as info:
        parse_playbook("bad.yaml", text.encode())
    message = str(info.value)
    assert f"bad.yaml{where}" in message, message
    assert what.lower() in message.lower(), message


def test_missing_playbook_lists_the_packaged_ones():
    from penguinctl.errors import SpecError

    with pytest.raises(SpecError, match="example"):
        load_playbook("no-such-playbook")
