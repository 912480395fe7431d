"""`server exec`, `server playbook`, `server ssh` and `server trust-hostkey`: SSH to recorded
servers.

Endpoints, keys and connections come from ``penguinctl.remote.servers`` (a server's key lives in
the secrets backend at ``servers/<server>/ssh``; host keys are pinned in the state store on
first contact, and a changed key is refused until ``trust-hostkey`` forgets the pinned one).
Fan-out commands show a live per-server display on a terminal and end with a summary of
ok / changed / failed / unreachable; ``-o json`` gives the per-server (and per-step) results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import output_formats

_STYLE = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "magenta"}


def __getattr__(name: str) -> Any:  # `Endpoint`/`endpoint_of` moved to penguinctl.remote.servers
    if name in ("Endpoint", "endpoint_of"):
        from penguinctl.remote import servers

        return getattr(servers, name)
    raise AttributeError(name)


def _select(app: Any, names: list[str] | None, all_servers: bool) -> list[Any]:
    from penguinctl.errors import UsageError
    from penguinctl.remote.servers import endpoints

    if bool(names) == all_servers:
        raise UsageError("name the servers, or pass --all (not both)")
    return endpoints(app, names)


def _finish(summary: Any) -> int:
    """Exit 0 when every server ended ok/changed; 6 when some did; 5 when none did."""
    from penguinctl.errors import PartialApply, ProviderError

    if summary.ok:
        return 0
    bad = [r for r in summary.results if r.status not in ("ok", "changed")]
    first = bad[0]
    msg = (
        f"{len(bad)} of {len(summary.results)} server(s) failed; first: {first.host}: "
        f"{first.error or first.status}"
    )
    if len(bad) < len(summary.results):
        raise PartialApply(msg, hint="the others completed; fix the failed ones and re-run")
    raise ProviderError(msg)


def _counts_line(summary: Any) -> str:
    text = ", ".join(f"{v} {k}" for k, v in summary.counts.items() if v)
    return text + (" (stopped early: --max-fail exceeded)" if summary.stopped_early else "")


def exec_(
    ctx: typer.Context,
    command: Annotated[str, typer.Argument(help="Shell command to run on each server.")],
    names: Annotated[
        list[str] | None, typer.Argument(metavar="SERVER", help="Servers (or --all).")
    ] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Every reachable server.")] = False,
    parallel: Annotated[
        int, typer.Option("--parallel", metavar="N", min=1, max=200, help="Servers at once.")
    ] = 10,
    max_fail: Annotated[
        float | None,
        typer.Option(
            "--max-fail", metavar="PERCENT", help="Stop starting servers past this % failed."
        ),
    ] = None,
    sudo: Annotated[bool, typer.Option("--sudo", help="Run through sudo -n.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Seconds per command.")
    ] = 300.0,
) -> int:
    """Run one command on many servers in parallel; a summary of ok / failed / unreachable."""
    from penguinctl.errors import ProviderError
    from penguinctl.remote import sshconfig
    from penguinctl.remote.fanout import fan_out
    from penguinctl.remote.hostkeys import StateHostKeyStore
    from penguinctl.remote.progress import fanout_progress
    from penguinctl.remote.servers import JumpPool, connect
    from penguinctl.remote.ssh import SshOptions

    app = ctx.obj
    eps = _select(app, names, all_servers)
    secrets = app.secrets()
    store = StateHostKeyStore(app.db, actor=app.actor())
    store.preload()
    options = SshOptions(command_timeout=timeout)
    ssh_config = sshconfig.load()
    progress = fanout_progress(app, [e.server for e in eps], "server exec")

    def task(ep: Any) -> Any:
        progress.step(ep.server, "connecting")
        with connect(ep, secrets, store, options, ssh_config=ssh_config, jumps=jumps) as conn:
            progress.step(ep.server, "running")
            result = conn.run(command, sudo=sudo)
        if not result.ok:
            raise ProviderError(f"exit {result.rc}: {result.stderr.strip()[-300:]}")
        return result

    with JumpPool() as jumps, progress:
        summary = fan_out(
            eps,
            task,
            parallel=parallel,
            max_fail_percent=max_fail,
            progress=progress.done,
            name=lambda e: e.server,
        )
    outputs = {r.host: (r.value.stdout if r.value is not None else "") for r in summary.results}
    data = {**summary.to_json(), "output": outputs}

    def text(console: Any) -> None:
        from rich.markup import escape

        for r in summary.results:
            console.print(f"[{_STYLE.get(r.status, 'yellow')}]{r.status:11}[/] {escape(r.host)}")
            out = outputs.get(r.host) or ""
            for line in out.rstrip("\n").splitlines()[-20:]:
                console.print(f"    {escape(line)}")
            if r.error:
                console.print(f"    [red]{escape(r.error)}[/]")
        console.print(_counts_line(summary))

    app.emit(data, text)
    return _finish(summary)


def _parse_vars(pairs: list[str] | None) -> dict[str, str]:
    from penguinctl.errors import UsageError

    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE with NAME an identifier")
        out[key.strip()] = value
    return out


def playbook_(
    ctx: typer.Context,
    playbook: Annotated[
        str, typer.Argument(help="A packaged playbook name (e.g. example) or a YAML file.")
    ],
    names: Annotated[
        list[str] | None, typer.Argument(metavar="SERVER", help="Servers (or --all).")
    ] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Every reachable server.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; show what would change (diffs).")
    ] = False,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", metavar="NAME=VALUE", help="Variable NAME=VALUE (repeatable)."),
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", metavar="N", min=1, max=200, help="Servers at once.")
    ] = 10,
    max_fail: Annotated[
        float | None,
        typer.Option(
            "--max-fail", metavar="PERCENT", help="Stop starting servers past this % failed."
        ),
    ] = None,
    sudo: Annotated[bool, typer.Option("--sudo", help="Run commands through sudo -n.")] = False,
    templates: Annotated[
        Path | None,
        typer.Option(
            "--templates", metavar="DIR", help="Extra templates directory (searched first)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Seconds per command.")
    ] = 300.0,
) -> int:
    """Run a playbook (idempotent steps) on many servers in parallel. A second run changes
    nothing; --check reports what would change, with file diffs (secrets masked)."""
    from penguinctl.errors import ProviderError
    from penguinctl.playbook import load_playbook, run_playbook
    from penguinctl.remote import sshconfig
    from penguinctl.remote.fanout import fan_out
    from penguinctl.remote.hostkeys import StateHostKeyStore
    from penguinctl.remote.progress import fanout_progress
    from penguinctl.remote.servers import JumpPool, connect
    from penguinctl.remote.ssh import SshOptions

    app = ctx.obj
    book = load_playbook(playbook)  # a bad playbook fails before any connection
    variables = _parse_vars(var)
    eps = _select(app, names, all_servers)
    secrets = app.secrets()
    store = StateHostKeyStore(app.db, actor=app.actor())
    store.preload()
    options = SshOptions(command_timeout=timeout)
    ssh_config = sshconfig.load()
    results: dict[str, Any] = {}
    progress = fanout_progress(
        app, [e.server for e in eps], f"playbook {book.name}{' (check)' if check else ''}"
    )

    def task(ep: Any) -> Any:
        progress.step(ep.server, "connecting")
        with connect(ep, secrets, store, options, ssh_config=ssh_config, jumps=jumps) as conn:
            res = run_playbook(
                conn,
                book,
                {"server": ep.server, **variables},
                check=check,
                sudo=sudo,
                templates_dir=templates,
                on_start=lambda step: progress.step(ep.server, step.name),
            )
        results[ep.server] = res
        failed = res.failed
        if failed is not None:
            raise ProviderError(f"step {failed.name!r} failed: {failed.detail}")
        return res

    with JumpPool() as jumps, progress:
        summary = fan_out(
            eps,
            task,
            parallel=parallel,
            max_fail_percent=max_fail,
            progress=progress.done,
            name=lambda e: e.server,
        )
    if not check:
        _audit(app, book.name, summary, results)
    hosts = []
    for r in summary.results:
        res = results.get(r.host)
        hosts.append({**r.to_json(), "steps": [s.to_json() for s in res.steps] if res else []})
    data = {
        "playbook": book.name,
        "check": check,
        "ok": summary.ok,
        "stopped_early": summary.stopped_early,
        "counts": summary.counts,
        "hosts": hosts,
    }

    def text(console: Any) -> None:
        from rich.markup import escape

        for r in summary.results:
            console.print(f"[{_STYLE.get(r.status, 'yellow')}]{r.status:11}[/] {escape(r.host)}")
            res = results.get(r.host)
            for step in res.steps if res else []:
                if step.status == "ok":
                    continue
                style = _STYLE[step.status]
                verb = "would change" if check and step.status == "changed" else step.status
                console.print(f"    [{style}]{verb}[/] {escape(step.name)}: {escape(step.detail)}")
                if check and step.diff:
                    for line in step.diff.rstrip("\n").splitlines():
                        color = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
                        body = escape(line)
                        console.print(f"      [{color}]{body}[/]" if color else f"      {body}")
            if r.error and not (res and res.failed):
                console.print(f"    [red]{escape(r.error)}[/]")
        console.print(_counts_line(summary) + (" (check: nothing was changed)" if check else ""))

    app.emit(data, text)
    return _finish(summary)


def _audit(app: Any, name: str, summary: Any, results: dict[str, Any]) -> None:
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    events = []
    for r in summary.results:
        if r.status == "skipped":
            continue
        res = results.get(r.host)
        details: dict[str, Any] = {"playbook": name}
        if res is not None:
            details["changed"] = [s.name for s in res.steps if s.status == "changed"]
            if res.failed is not None:
                details["failed_step"] = res.failed.name
        events.append(
            {
                "actor": app.actor(),
                "tenant": "",
                "action": "server.playbook",
                "resource": f"server/{r.host}",
                "result": r.status,
                "details": details,
            }
        )
    with session_scope(app.db) as session:
        audit.record_many(session, events)


@output_formats("text")
def ssh_(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="The server to log in to.")],
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="COMMAND", help="Remote command (after --), as with ssh."),
    ] = None,
) -> int:
    """Open an interactive shell (or run `-- COMMAND`) on SERVER with the system ssh client,
    its key from the secrets backend and its pinned host key (pinned now if none is yet),
    through its jump hosts (ProxyJump, each with its own pinned key)."""
    import shutil
    import subprocess

    from penguinctl.errors import UsageError
    from penguinctl.remote import sshconfig
    from penguinctl.remote.hostkeys import StateHostKeyStore, fingerprint
    from penguinctl.remote.openssh import client_config
    from penguinctl.remote.servers import connection, endpoints, private_key
    from penguinctl.remote.ssh import SshOptions
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    app = ctx.obj
    args = list(args or [])
    if args[:1] == ["--"]:  # click keeps the separator once positionals have started
        args = args[1:]
    binary = shutil.which("ssh")
    if binary is None:
        raise UsageError("no `ssh` client on PATH", hint="install openssh-client")
    (ep,) = endpoints(app, [server])
    secrets = app.secrets()
    store = StateHostKeyStore(app.db, actor=app.actor())
    conn = connection(
        ep,
        lambda e: private_key(secrets, e.server, e.tenant),
        store,
        SshOptions(retries=0),
        ssh_config=sshconfig.load(),
    )
    route = [conn, *conn.hops()]
    unpinned = [h for h in route if store.get(h.pin_host, h.port) is None]
    if unpinned:  # first contact: pin through paramiko, say what was pinned
        try:
            conn.connect()
        finally:
            conn.close()
        for hop in unpinned:
            key_type, key_b64 = store.get(hop.pin_host, hop.port) or ("?", "")
            what = hop.server or "jump host"
            app.err.print(
                f"pinned the host key of {what} ({hop.pin_host}:{hop.port}): "
                f"{key_type} {fingerprint(key_b64) if key_b64 else '?'}"
            )

    def pinned_of(hop: Any) -> tuple[str, str]:
        found = store.get(hop.pin_host, hop.port)
        assert found is not None
        return found

    def key_of(hop: Any) -> str | None:
        return None if hop.server is None else private_key(secrets, hop.server, hop.tenant).reveal()

    with session_scope(app.db) as session:
        audit.record(
            session,
            actor=app.actor(),
            tenant="",
            action="server.ssh",
            resource=f"server/{server}",
            result="started",
            details={"command": bool(args), "jump_hosts": len(route) - 1},
        )
    with client_config(route, key_of, pinned_of) as (config, alias):
        argv = [binary, "-F", str(config), "--", alias, *args]
        return subprocess.run(argv, check=False).returncode


def trust_hostkey(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="The server whose new host key to accept.")],
    jump: Annotated[
        str | None,
        typer.Option(
            "--jump",
            metavar="HOST:PORT",
            help="Forget the key of this jump host in front of SERVER instead (as the "
            "changed-key error names it).",
        ),
    ] = None,
) -> None:
    """Forget the pinned SSH host key of SERVER (after checking why it changed, e.g. a rebuild),
    or of one of its jump hosts with --jump; the next connection pins the key it then presents."""
    from penguinctl.errors import UsageError
    from penguinctl.remote import sshconfig
    from penguinctl.remote.hostkeys import StateHostKeyStore
    from penguinctl.remote.servers import connection, endpoints

    app = ctx.obj
    (ep,) = endpoints(app, [server])
    store = StateHostKeyStore(app.db, actor=app.actor())
    conn = connection(ep, lambda e: None, store, ssh_config=sshconfig.load())
    hop = conn
    if jump is not None:
        hops = {f"{h.pin_host}:{h.port}": h for h in conn.hops()}
        if jump not in hops:
            known = ", ".join(hops) or "none"
            raise UsageError(
                f"{jump} is not a jump host in front of server {server} (its jump hosts: {known})"
            )
        hop = hops[jump]
    had = store.get(hop.pin_host, hop.port)
    store.forget(hop.pin_host, hop.port)
    what = f"{server}'s jump host" if jump else server
    where = f"{hop.pin_host}:{hop.port}"
    app.emit(
        {"server": server, "host": hop.pin_host, "port": hop.port, "forgotten": had is not None},
        lambda c: c.print(
            f"Forgot the pinned host key of {what} ({where}); the next connection "
            "pins the key it presents."
            if had
            else f"No host key was pinned for {what} ({where})."
        ),
    )


def attach(server_app: typer.Typer) -> None:
    """Hang ``exec``, ``playbook``, ``ssh`` and ``trust-hostkey`` off the ``server`` group
    (``commands_server.server_app``, which calls this: the group does not import back)."""
    server_app.command("exec")(exec_)
    server_app.command("playbook")(playbook_)
    server_app.command(
        "ssh", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
    )(ssh_)
    server_app.command("trust-hostkey")(trust_hostkey)
