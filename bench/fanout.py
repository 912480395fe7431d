"""Benchmark 5: configuration fan-out over SSH to N hosts (default 50).

The same five steps on every host (directory, templated ~2 KB file, command, checksum check,
command), first run (fresh target trees) and no-change run (right after), with:

- penguinctl: the whole CLI process, ``penguinctl server playbook example --all --parallel N``
  (the shipped ``playbooks/example.yaml``; servers recorded as ``static`` in a
  fresh state store, keys in the keystore, host keys pinned by a warm-up ``server exec``);
- pyinfra (``pyinfra -y --parallel N inventory.py deploy.py``: files.directory,
  files.template, server.shell x3);
- bare fabric threads (one ``fabric.Connection`` per host in a thread pool of N: run, put, run
  x3; the template is rendered locally with Jinja2; no checks, it just does the work);
- ansible-playbook (forks=N, pipelining, gather_facts off), for reference only;
- ``engine`` (informational, ``--tools engine``): penguinctl's ``fan_out`` + ``run_playbook``
  in one process without the CLI, state store or keystore.

The commands of pyinfra, fabric and ansible are guarded in shell (``test -e X || ...``) so each
tool reaches the same end state; penguinctl uses its ops (``creates``/``unless``). Each tool
works in its own tree ``targets/<tool>/<host>``, wiped before every first run.

Hosts: N real ``sshd`` (tests/sshd.py) on 127.0.0.10, .11, ... one per address. Sessions log in
as ``--user`` (default ``penguinbench``, created by bench/setup.sh with /bin/sh as its shell):
root's login shell on the reference machine is bash with a ``.bashrc`` that runs
``pyenv init`` (~0.15 s per remote command), which would swamp what is being compared.

Run as root (sshd logs other users in only as root):
    python bench/fanout.py                 # 50 hosts, 3 rounds, all tools
    python bench/fanout.py --hosts 10 --runs 1 --tools penguinctl,fabric
    python bench/fanout.py --runs 0 --tools penguinctl,fabric --profile   # phases of a first run
Prints a Markdown table (medians) and the ratios against the targets of product.md section 7.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ANCHORS = BENCH / ".venv-anchors" / "bin"
TEMPLATE = REPO / "templates" / "example" / "app.conf.j2"
sys.path.insert(0, str(REPO / "tests"))

VARS = {"app_name": "example", "version": "1.0", "listen_port": 8080, "workers": 4}


# -- the five steps as shell, for the tools without idempotent ops ------------------------------
def shell_steps(root: str) -> list[str]:
    r = shlex.quote(root)
    return [
        f"test -e {r}/.initialized || date -u +%Y-%m-%dT%H:%M:%SZ > {r}/.initialized",
        f"cd {r} && (sha256sum -c --status app.conf.sha256 2>/dev/null"
        " || sha256sum app.conf > app.conf.sha256)",
        f'test "$(cat {r}/VERSION 2>/dev/null)" = {VARS["version"]}'
        f" || printf '%s\\n' {VARS['version']} > {r}/VERSION",
    ]


def template_vars(server: str, root: str) -> dict[str, object]:
    return {**VARS, "server": server, "root": root}


# -- environment -------------------------------------------------------------------------------
class Fleet:
    def __init__(self, work: Path, n: int, user: str) -> None:
        from sshd import SshServer, keygen

        self.work, self.user = work, user
        self.key = work / "id_ed25519"
        _, pub = keygen(self.key)
        self.servers = []
        for i in range(n):
            address = f"127.0.0.{10 + i}"
            srv = SshServer(work / "sshd" / address, address, authorized_keys=[pub])
            self.servers.append(srv)
        os.chmod(work, 0o755)

    def start(self) -> None:
        for srv in self.servers:
            srv.start()
            os.chmod(srv.workdir, 0o755)  # the login user reads authorized_keys
            (srv.workdir / "authorized_keys").chmod(0o644)
        self.known_hosts = self.work / "known_hosts"
        self.known_hosts.write_text(
            "".join(f"[{s.address}]:{s.port} {s.host_key_public}\n" for s in self.servers)
        )

    def stop(self) -> None:
        for srv in self.servers:
            srv.stop()

    def name(self, i: int) -> str:
        return f"h{10 + i}"


def targets(work: Path, tool: str, user: str) -> Path:
    base = work / "targets" / tool
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    pw = pwd.getpwnam(user)
    for p in (base.parent, base):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    return base


def count_done(base: Path) -> int:
    return sum(
        1 for d in base.iterdir() if (d / "VERSION").is_file() and (d / "app.conf").is_file()
    )


# -- tools ---------------------------------------------------------------------------------------
class Tool:
    name = ""

    def __init__(self, fleet: Fleet, work: Path, parallel: int) -> None:
        self.fleet, self.work, self.parallel = fleet, work, parallel

    def prepare(self) -> None: ...

    def command(self, base: Path) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def run(self, base: Path) -> tuple[float, str]:
        argv = self.command(base)
        start = time.monotonic()
        proc = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=900)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"{self.name} exited {proc.returncode}:\n{tail}")
        return elapsed, proc.stdout


def penguinctl_cmd() -> list[str]:
    """The console script of the Python running the bench (not the first ``penguinctl`` on PATH:
    a pyenv shim there may run another installation); else ``python -m penguinctl``."""
    exe = Path(sys.executable).parent / "penguinctl"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "penguinctl"]


class Penguinctl(Tool):
    name = "penguinctl"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PENGUINCTL_HOME"] = str(self.work / "pg-home")
        env.pop("PENGUINCTL_STATE", None)
        return env

    def prepare(self) -> None:
        f = self.fleet
        docs = ["apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: bench}\n"]
        for i, srv in enumerate(f.servers):
            docs.append(
                "apiVersion: penguinctl/v1\nkind: Server\n"
                f"metadata: {{name: {f.name(i)}, tenant: bench}}\n"
                "spec:\n  provider: static\n"
                f"  static: {{address: {srv.address}, ssh_user: {f.user}, ssh_port: {srv.port}}}\n"
                f"  hostname: {f.name(i)}.bench.example\n"
                "  mail: {stack: none}\n"
            )
        spec = self.work / "fleet.yaml"
        spec.write_text("---\n".join(docs))
        env = self.env()
        subprocess.run([*penguinctl_cmd(), "apply", "-f", str(spec), "--yes"], env=env,
                       check=True, capture_output=True)  # fmt: skip
        code = (
            "import os,sys\n"
            "from penguinctl.settings import load_settings\n"
            "from penguinctl.providers.secrets.keystore import KeystoreBackend\n"
            "from penguinctl.secret_paths import server_ssh\n"
            "s = load_settings()\n"
            "ks = KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, "
            "master_key=s.master_key)\n"
            "key = open(sys.argv[1]).read()\n"
            "for name in sys.argv[2:]:\n"
            "    ks.put(server_ssh('bench', name), {'private_key': key})\n"
        )
        names = [f.name(i) for i in range(len(f.servers))]
        subprocess.run([sys.executable, "-c", code, str(f.key), *names], env=env, check=True)
        # pins the 50 host keys (first contact) so timed runs compare like with like
        warm = subprocess.run([*penguinctl_cmd(), "server", "exec", "true", "--all",
                               "--parallel", str(self.parallel)], env=env, capture_output=True,
                              text=True)  # fmt: skip
        if warm.returncode != 0:
            raise RuntimeError(f"penguinctl server exec failed:\n{warm.stdout}{warm.stderr}")

    def command(self, base: Path) -> list[str]:
        return [*penguinctl_cmd(), "server", "playbook", "example", "--all", "--parallel",
                str(self.parallel), "--var", f"base={base}", "-o", "json"]  # fmt: skip


class Pyinfra(Tool):
    name = "pyinfra"

    def prepare(self) -> None:
        f = self.fleet
        hosts = [
            (
                f.name(i),
                {
                    "ssh_hostname": s.address,
                    "ssh_port": s.port,
                    "ssh_user": f.user,
                    "ssh_key": str(f.key),
                    "ssh_known_hosts_file": str(f.known_hosts),
                    "ssh_strict_host_key_checking": "yes",
                },
            )
            for i, s in enumerate(f.servers)
        ]
        d = self.work / "pyinfra"
        d.mkdir(exist_ok=True)
        (d / "inventory.py").write_text(f"hosts = {hosts!r}\n")
        (d / "deploy.py").write_text(
            "import sys\n"
            f"sys.path.insert(0, {str(BENCH)!r})\n"
            "from fanout import shell_steps, template_vars\n"
            "from pyinfra import host\n"
            "from pyinfra.operations import files, server\n"
            "root = host.data.base + '/' + host.name\n"
            "files.directory(name='app directory', path=root, mode='755')\n"
            f"files.template(name='app config', src={str(TEMPLATE)!r}, dest=root + '/app.conf',"
            " mode='644', **template_vars(host.name, root))\n"
            "for i, cmd in enumerate(shell_steps(root)):\n"
            "    server.shell(name=f'command {i}', commands=[cmd])\n"
        )
        self.dir = d

    def command(self, base: Path) -> list[str]:
        return [str(ANCHORS / "pyinfra"), "-y", "--parallel", str(self.parallel),
                "--data", f"base={base}", str(self.dir / "inventory.py"),
                str(self.dir / "deploy.py")]  # fmt: skip


FABRIC_SCRIPT = """
import io, sys, json
from concurrent.futures import ThreadPoolExecutor
import jinja2, paramiko
from fabric import Connection
sys.path.insert(0, {bench!r})
from fanout import shell_steps, template_vars
cfg = json.loads(sys.argv[1])
template = jinja2.Template(open(cfg["template"]).read(), keep_trailing_newline=True)

def one(h):
    name, address, port = h
    root = cfg["base"] + "/" + name
    c = Connection(address, user=cfg["user"], port=port, connect_kwargs={{
        "key_filename": cfg["key"], "look_for_keys": False, "allow_agent": False}})
    c.client.load_host_keys(cfg["known_hosts"])
    c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        c.run(f"mkdir -p {{root}} && chmod 755 {{root}}", hide=True)
        data = template.render(**template_vars(name, root)).encode()
        c.put(io.BytesIO(data), root + "/app.conf")
        for cmd in shell_steps(root):
            c.run(cmd, hide=True)
    finally:
        c.close()

with ThreadPoolExecutor(cfg["parallel"]) as pool:
    list(pool.map(one, cfg["hosts"]))
"""


class Fabric(Tool):
    name = "fabric"

    def prepare(self) -> None:
        self.script = self.work / "fabric_run.py"
        self.script.write_text(FABRIC_SCRIPT.format(bench=str(BENCH)))

    def command(self, base: Path) -> list[str]:
        f = self.fleet
        cfg = {
            "base": str(base),
            "user": f.user,
            "key": str(f.key),
            "known_hosts": str(f.known_hosts),
            "template": str(TEMPLATE),
            "parallel": self.parallel,
            "hosts": [[f.name(i), s.address, s.port] for i, s in enumerate(f.servers)],
        }
        return [str(ANCHORS / "python"), str(self.script), json.dumps(cfg)]


class Ansible(Tool):
    name = "ansible"

    def prepare(self) -> None:
        f = self.fleet
        d = self.work / "ansible"
        d.mkdir(exist_ok=True)
        lines = [
            f"{f.name(i)} ansible_host={s.address} ansible_port={s.port}"
            for i, s in enumerate(f.servers)
        ]
        (d / "hosts.ini").write_text(
            "[fleet]\n" + "\n".join(lines) + "\n\n[fleet:vars]\n"
            f"ansible_user={f.user}\nansible_ssh_private_key_file={f.key}\n"
            "ansible_python_interpreter=/usr/bin/python3\n"
        )
        (d / "ansible.cfg").write_text(
            f"[defaults]\nforks = {self.parallel}\nhost_key_checking = True\n"
            "remote_tmp = /tmp/.ansible-bench-${USER}\nstdout_callback = default\n"
            "[ssh_connection]\npipelining = True\n"
            f"ssh_args = -o UserKnownHostsFile={f.known_hosts} -o ControlMaster=auto "
            "-o ControlPersist=60s -o IdentitiesOnly=yes\n"
        )
        steps = shell_steps("{{ root }}")
        tasks = [
            {
                "name": "app directory",
                "file": {"path": "{{ root }}", "state": "directory", "mode": "0755"},
            },
            {
                "name": "app config",
                "template": {"src": str(TEMPLATE), "dest": "{{ root }}/app.conf", "mode": "0644"},
            },
            *({"name": f"command {i}", "shell": cmd} for i, cmd in enumerate(steps)),
        ]
        play = [{
            "hosts": "fleet", "gather_facts": False,
            "vars": {**VARS, "server": "{{ inventory_hostname }}",
                     "root": "{{ base }}/{{ inventory_hostname }}"},
            "tasks": tasks,
        }]  # fmt: skip
        (d / "play.yml").write_text(json.dumps(play, indent=1))  # JSON is YAML
        self.dir = d

    def env(self) -> dict[str, str]:
        return {**os.environ, "ANSIBLE_CONFIG": str(self.dir / "ansible.cfg")}

    def command(self, base: Path) -> list[str]:
        return [str(ANCHORS / "ansible-playbook"), "-i", str(self.dir / "hosts.ini"),
                "-e", f"base={base}", str(self.dir / "play.yml")]  # fmt: skip


ENGINE_SCRIPT = """
import json, sys
from penguinctl.playbook import load_playbook, run_playbook
from penguinctl.remote.fanout import fan_out
from penguinctl.remote.hostkeys import MemoryHostKeyStore
from penguinctl.remote.ssh import SshConnection
cfg = json.loads(sys.argv[1])
store = MemoryHostKeyStore()
for line in open(cfg["known_hosts"]):
    name, key_type, key = line.split()[:3]
    host, port = name[1:].split("]:")
    store.pin(host, int(port), key_type, key)
key = open(cfg["key"]).read()
book = load_playbook("example")

def one(h):
    name, address, port = h
    with SshConnection(address, port, cfg["user"], key, host_keys=store) as conn:
        res = run_playbook(conn, book, {"server": name, "base": cfg["base"]})
    if res.failed:
        raise RuntimeError(res.failed.detail)
    return res

summary = fan_out(cfg["hosts"], one, parallel=cfg["parallel"], name=lambda h: h[0])
sys.exit(0 if summary.ok else 1)
"""


class Engine(Fabric):
    """penguinctl's engine without the CLI (no state store, no keystore): fan_out +
    run_playbook in one process, as the bare fabric script runs. Informational: it shows how much
    of the CLI's time is start-up (imports, state store) rather than SSH work."""

    name = "engine"

    def prepare(self) -> None:
        self.script = self.work / "engine_run.py"
        self.script.write_text(ENGINE_SCRIPT)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def command(self, base: Path) -> list[str]:
        return [sys.executable, *super().command(base)[1:]]


TOOLS = {t.name: t for t in (Penguinctl, Engine, Pyinfra, Fabric, Ansible)}

# --profile: where a first run's wall time goes, in three phases: start (process start to the
# first connection: imports, state store, keys), fan-out (the SSH work on every host) and exit
# (the last host done to the process gone). Wall and CPU seconds at each mark are printed as
# "PHASES {json}" on stderr; the bench adds the whole process's wall time.
PHASES_HEAD = """
import atexit, json, sys, time
T0 = time.perf_counter()
_marks = {}
def mark(name):
    _marks[name] = [round(time.perf_counter() - T0, 4), round(time.process_time(), 4)]
atexit.register(lambda: print("PHASES " + json.dumps(_marks), file=sys.stderr))
"""
PENGUINCTL_PHASES = (
    PHASES_HEAD
    + """
import penguinctl.remote.fanout as fanout
_fan_out = fanout.fan_out
def fan_out(*args, **kwargs):
    mark("fanout_start")
    try:
        return _fan_out(*args, **kwargs)
    finally:
        mark("fanout_end")
fanout.fan_out = fan_out
from penguinctl.cli import main
sys.argv = ["penguinctl", *sys.argv[1:]]
main()  # as the console script: argv None
"""
)


def profile(tools: list[Tool], work: Path, user: str) -> list[str]:
    """One more first and no-change run of penguinctl and of bare fabric with phase marks (not
    in the medians); returns the report's lines."""
    lines = [
        "",
        "### Profile: one first and one no-change run each, phases (wall s / CPU s of the "
        "client process)",
        "",
    ]
    lines += ["| tool | run | start | fan-out | exit | whole process |"]
    lines += ["|---|---|---|---|---|---|"]
    for tool in tools:
        if tool.name == "penguinctl":
            script = work / "penguinctl_phases.py"
            script.write_text(PENGUINCTL_PHASES)
            argv = tool.command(targets(work, tool.name, user))
            argv = [sys.executable, str(script), *argv[argv.index("server") :]]
        elif tool.name == "fabric":
            script = work / "fabric_phases.py"
            body = FABRIC_SCRIPT.format(bench=str(BENCH)).replace(
                "with ThreadPoolExecutor", 'mark("fanout_start")\nwith ThreadPoolExecutor'
            )
            script.write_text(PHASES_HEAD + body + 'mark("fanout_end")\n')
            argv = tool.command(targets(work, tool.name, user))
            argv = [argv[0], str(script), *argv[2:]]
        else:
            continue
        for run in ("first", "no-change"):
            start = time.monotonic()
            proc = subprocess.run(argv, env=tool.env(), capture_output=True, text=True, timeout=900)
            whole = time.monotonic() - start
            found = [x for x in proc.stderr.splitlines() if x.startswith("PHASES ")]
            if proc.returncode != 0 or not found:
                lines.append(f"| {tool.name} | {run} | failed: exit {proc.returncode} | | | |")
                continue
            m = json.loads(found[-1][len("PHASES ") :])
            (w0, c0), (w1, c1) = m["fanout_start"], m["fanout_end"]
            lines.append(
                f"| {tool.name} | {run} | {w0:.2f} / {c0:.2f} | {w1 - w0:.2f} / {c1 - c0:.2f} | "
                f"{whole - w1:.2f} | {whole:.2f} |"
            )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ansible-runs", type=int, default=1)
    ap.add_argument("--tools", default="penguinctl,pyinfra,fabric,ansible")
    ap.add_argument("--user", default="penguinbench")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="after the timed rounds, one first run of penguinctl and fabric with phase marks "
        "(start, fan-out, exit)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: sshd logs the bench user in only as root", file=sys.stderr)
        return 2
    try:
        pwd.getpwnam(args.user)
    except KeyError:
        print(f"no user {args.user}: run bench/setup.sh, or pass --user", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="penguinctl-fanout-"))
    work.mkdir(parents=True, exist_ok=True)
    names = [t for t in args.tools.split(",") if t]
    fleet = Fleet(work, args.hosts, args.user)
    results: dict[str, dict[str, list[float]]] = {n: {"first": [], "nochange": []} for n in names}
    loads: list[float] = [os.getloadavg()[0]]
    profiled: list[str] = []
    try:
        fleet.start()
        tools = [TOOLS[n](fleet, work, args.hosts) for n in names]
        for tool in tools:
            tool.prepare()
        for rnd in range(args.runs):
            order = tools if rnd % 2 == 0 else list(reversed(tools))
            for tool in order:
                if tool.name == "ansible" and rnd >= args.ansible_runs:
                    continue
                base = targets(work, tool.name, args.user)
                loads.append(os.getloadavg()[0])
                first, _ = tool.run(base)
                done = count_done(base)
                again, _ = tool.run(base)
                if done != args.hosts or count_done(base) != args.hosts:
                    raise RuntimeError(f"{tool.name}: only {done} of {args.hosts} hosts done")
                results[tool.name]["first"].append(first)
                results[tool.name]["nochange"].append(again)
                print(f"round {rnd + 1} {tool.name:10} first {first:6.2f}s  "
                      f"no-change {again:6.2f}s", file=sys.stderr)  # fmt: skip
        if args.profile:
            profiled = profile(tools, work, args.user)
    finally:
        fleet.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if any(results[n]["first"] for n in names):
        report(results, args.hosts, loads)
    if args.profile:
        print("\n".join(profiled))
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    (out / f"fanout-{stamp}.json").write_text(
        json.dumps({"hosts": args.hosts, "results": results, "load": loads}, indent=1)
    )
    return 0


def report(results: dict[str, dict[str, list[float]]], hosts: int, loads: list[float]) -> None:
    med = {t: {k: statistics.median(v) for k, v in r.items() if v} for t, r in results.items()}
    print(f"\n### Fan-out: 5 steps on {hosts} hosts (medians; 1-min load "
          f"{min(loads):.2f}-{max(loads):.2f})\n")  # fmt: skip
    print("| tool | first run | no-change run | runs |")
    print("|---|---|---|---|")
    for t, m in med.items():
        n = len(results[t]["first"])
        print(f"| {t} | {m.get('first', 0):.2f} s | {m.get('nochange', 0):.2f} s | {n} |")
    p = med.get("penguinctl")
    if not p:
        return
    print()
    for anchor, target in (("pyinfra", 1.0), ("fabric", 1.3), ("ansible", None)):
        a = med.get(anchor)
        if not a:
            continue
        for k, label in (("first", "first run"), ("nochange", "no-change run")):
            ratio = p[k] / a[k]
            verdict = "" if target is None else (" ok" if ratio <= target else " MISSED")
            goal = "reference" if target is None else f"target <= {target}x"
            print(f"- penguinctl / {anchor}, {label}: {ratio:.2f}x ({goal}){verdict}")


if __name__ == "__main__":
    sys.exit(main())
