"""`server exec 'CMD' [--all | NAMES]` and `server trust-hostkey SERVER`: SSH to recorded servers.

A server's SSH endpoint comes from its recorded data (``static``: address, user, port; a
``hostwinds`` server: its main IP as root on 22) and its key from the secrets backend at
``servers/<server>/ssh`` (field ``private_key``). Host keys are pinned in the state store on first
contact; a changed key is refused until ``trust-hostkey`` forgets the pinned one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from penguinctl.cli.commands_server import server_app


@dataclass(frozen=True)
class Endpoint:
    server: str
    host: str
    port: int
    user: str

    def __str__(self) -> str:
        return self.server


def endpoint_of(name: str, data: dict[str, Any]) -> Endpoint | None:
    """Where to reach a recorded server over SSH (None: an external server, not reachable)."""
    provider = data.get("provider")
    if provider == "static":
        static = data.get("static") or {}
        return Endpoint(
            name,
            str(static.get("address")),
            int(static.get("ssh_port") or 22),
            str(static.get("ssh_user") or "root"),
        )
    if provider == "hostwinds" and data.get("main_ip"):
        return Endpoint(name, str(data["main_ip"]), 22, "root")
    return None


def _endpoints(app, names: list[str] | None) -> list[Endpoint]:
    from penguinctl.errors import NotFound, UsageError
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.db) as session:
        rows = [r for r in repo.list_resources(session, kind="server") if r.status != "pending"]
    known = {r.name: r for r in rows}
    wanted = names if names else sorted(known)
    missing = [n for n in wanted if n not in known]
    if missing:
        raise NotFound(
            f"no recorded server {', '.join(missing)}", hint="see `penguinctl server list`"
        )
    out = []
    for name in wanted:
        ep = endpoint_of(name, known[name].data or {})
        if ep is None:
            if names:
                raise UsageError(f"server {name} is external: penguinctl has no SSH access to it")
            continue
        out.append(ep)
    return out


@server_app.command("exec")
def exec_(
    ctx: typer.Context,
    command: Annotated[str, typer.Argument(help="Shell command to run on each server.")],
    names: Annotated[list[str] | None, typer.Argument(help="Servers (default with --all).")] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Every reachable server.")] = False,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=200)] = 10,
    max_fail: Annotated[
        float | None, typer.Option("--max-fail", help="Stop starting servers past this % failed.")
    ] = None,
    sudo: Annotated[bool, typer.Option("--sudo", help="Run through sudo -n.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per command.")] = 300.0,
) -> int:
    """Run one command on many servers in parallel; a summary of ok / failed / unreachable."""
    from penguinctl.errors import PartialApply, ProviderError, UsageError
    from penguinctl.remote.errors import HostKeyChanged
    from penguinctl.remote.fanout import fan_out
    from penguinctl.remote.hostkeys import StateHostKeyStore
    from penguinctl.remote.ssh import SshConnection, SshOptions

    app = ctx.obj
    if bool(names) == all_servers:
        raise UsageError("name the servers, or pass --all (not both)")
    endpoints = _endpoints(app, names)
    secrets = app.secrets()
    store = StateHostKeyStore(app.db, actor=app.actor())
    options = SshOptions(command_timeout=timeout)

    def task(ep: Endpoint):
        fields = secrets.get(f"servers/{ep.server}/ssh") or {}
        key = fields.get("private_key")
        if key is None:
            raise ProviderError(
                f"server {ep.server}: no SSH key in the secrets backend at servers/{ep.server}/ssh"
            )
        try:
            with SshConnection(
                ep.host, ep.port, ep.user, key, host_keys=store, options=options
            ) as conn:
                result = conn.run(command, sudo=sudo)
        except HostKeyChanged as exc:  # name the server in the command to run
            exc.hint = (exc.hint or "").replace(
                "trust-hostkey SERVER", f"trust-hostkey {ep.server}"
            )
            raise
        if not result.ok:
            raise ProviderError(f"exit {result.rc}: {result.stderr.strip()[-300:]}")
        return result

    summary = fan_out(
        endpoints, task, parallel=parallel, max_fail_percent=max_fail, name=lambda e: e.server
    )
    outputs = {r.host: (r.value.stdout if r.value is not None else "") for r in summary.results}
    data = {**summary.to_json(), "output": outputs}

    def text(console) -> None:
        from rich.markup import escape

        style = {"ok": "green", "changed": "green", "failed": "red", "unreachable": "magenta"}
        for r in summary.results:
            console.print(f"[{style.get(r.status, 'yellow')}]{r.status:11}[/] {escape(r.host)}")
            out = outputs.get(r.host) or ""
            for line in out.rstrip("\n").splitlines()[-20:]:
                console.print(f"    {escape(line)}")
            if r.error:
                console.print(f"    [red]{escape(r.error)}[/]")
        c = summary.counts
        console.print(", ".join(f"{v} {k}" for k, v in c.items() if v))

    app.emit(data, text)
    if summary.ok:
        return 0
    bad = [r for r in summary.results if r.status not in ("ok", "changed")]
    first = bad[0]
    msg = (
        f"{len(bad)} of {len(summary.results)} server(s) failed; first: {first.host}: {first.error}"
    )
    if len(bad) < len(summary.results):
        raise PartialApply(msg, hint="the others completed; fix the failed ones and re-run")
    raise ProviderError(msg)


@server_app.command("trust-hostkey")
def trust_hostkey(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="The server whose new host key to accept.")],
) -> None:
    """Forget the pinned SSH host key of SERVER (after checking why it changed, e.g. a rebuild);
    the next connection pins the key the server then presents."""
    from penguinctl.remote.hostkeys import StateHostKeyStore

    app = ctx.obj
    (ep,) = _endpoints(app, [server])
    store = StateHostKeyStore(app.db, actor=app.actor())
    had = store.get(ep.host, ep.port)
    store.forget(ep.host, ep.port)
    app.emit(
        {"server": server, "host": ep.host, "port": ep.port, "forgotten": had is not None},
        lambda c: c.print(
            f"Forgot the pinned host key of {server} ({ep.host}:{ep.port}); the next connection "
            "pins the key it presents."
            if had
            else f"No host key was pinned for {server} ({ep.host}:{ep.port})."
        ),
    )
