"""The CLI's client mode (``penguinctl.apiclient``): the commands that work through the HTTP API
when ``PENGUINCTL_API_URL`` is set fetch their data here and print it as they print local data.
Only the standard library at module level (command modules import this at call time)."""

from __future__ import annotations

from typing import Any

# `get KIND` -> the API's list path (kinds not here are local only)
LIST_PATHS = {
    "tenant": "/tenants",
    "server": "/servers",
    "domain": "/domains",
    "mailbox": "/mailboxes",
    "dnsprovider": "/dnsproviders",
    "campaign": "/campaigns",
    "backup": "/backups",
    "invoice": "/invoices",
}
_SYMBOL = {"create": "+", "update": "~", "delete": "-"}


def client(app: Any) -> Any:
    """The API client when client mode is on, else None."""
    from penguinctl import apiclient

    found = getattr(app, "_api_client", None)
    if found is None:
        found = apiclient.from_env(app.env)
        app._api_client = found
    return found


def _local_only(what: str) -> Any:
    from penguinctl.errors import UsageError

    return UsageError(
        f"{what} is not available in client mode (PENGUINCTL_API_URL is set)",
        hint="unset PENGUINCTL_API_URL to use the state store directly",
    )


def get_items(api: Any, kind: str, name: str | None, tenant: str | None) -> list[dict[str, Any]]:
    path = LIST_PATHS.get(kind)
    if path is None:
        raise _local_only(f"get {kind}")
    if kind in ("tenant", "server", "domain", "mailbox", "dnsprovider"):
        items = list(api.items(path, tenant=tenant, name=name))
        return [i for i in items if name is None or i.get("name") == name]
    items = list(api.items(path, tenant=tenant))
    if kind == "campaign":
        keep = ("tenant", "name", "status", "steps", "leads", "sent", "ambiguous")
        return [{k: i[k] for k in keep} for i in items if name is None or i["name"] == name]
    if kind == "backup":
        return [i for i in items if name is None or i["server"] == name]
    return [i for i in items if name is None or name in (str(i["id"]), i["number"])]


def describe(api: Any, kind: str, name: str) -> dict[str, Any]:
    path = LIST_PATHS.get(kind)
    if path is None:
        raise _local_only(f"describe {kind}")
    from urllib.parse import quote

    return api.get(f"{path}/{quote(name, safe='@')}")


def render_plan(console: Any, data: dict[str, Any]) -> None:
    """A plan received from the API, for a person."""
    from rich.markup import escape

    for change in data["changes"]:
        symbol = _SYMBOL.get(change["action"], "?")
        console.print(f"  {symbol} {escape(change['resource'])}", highlight=False)
    c = data["counts"]
    console.print(
        f"Plan {data.get('id', '')}: {c.get('create', 0)} to create, {c.get('update', 0)} to "
        f"update, {c.get('delete', 0)} to delete (checksum {data['checksum'][:16]})."
    )
    for reason in data.get("unsafe") or []:
        console.print(f"[red]needs --force:[/] {escape(reason)}")


def plan(app: Any, api: Any, files: list[Any], *, targets: list[str], destroy: bool,
         refresh: bool, out: Any, detailed_exitcode: bool) -> int:  # fmt: skip
    from penguinctl.apiclient import read_spec_files
    from penguinctl.errors import PLAN_CHANGES_PENDING

    if out is not None:
        raise _local_only("plan --out")
    made = api.plan(read_spec_files(files), targets=targets, destroy=destroy, refresh=refresh)
    app.emit({**made["plan"], "id": made["id"]},
             lambda c: render_plan(c, {**made["plan"], "id": made["id"]}))  # fmt: skip
    if detailed_exitcode and made["changes"]:
        return PLAN_CHANGES_PENDING
    return 0


def apply(app: Any, api: Any, files: list[Any], *, targets: list[str], destroy: bool,
          force: bool, parallel: int, refresh: bool) -> int:  # fmt: skip
    """Plan through the API, show it, confirm (unless --yes), apply and wait for the job."""
    import typer

    from penguinctl.apiclient import raise_for_apply, read_spec_files
    from penguinctl.errors import UnsafePlan, UsageError

    made = api.plan(read_spec_files(files), targets=targets, destroy=destroy, refresh=refresh)
    data = {**made["plan"], "id": made["id"]}
    if not made["changes"]:
        app.emit(
            {"changes": [], "status": "no-op", "checksum": made["checksum"], "plan": made["id"]},
            lambda c: c.print("[green]No changes.[/] Infrastructure matches the spec."),
        )
        return 0
    if not app.machine:
        render_plan(app.out, data)
    if data.get("unsafe") and not force:
        raise UnsafePlan(list(data["unsafe"]))
    if not app.yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError(
                "apply needs confirmation but stdin is not a terminal", hint="add --yes"
            )
        if not typer.confirm("Do you want to apply these changes?", default=False):
            raise UsageError("not confirmed; nothing was changed", hint="use --yes in scripts")
    done = api.apply(made, force=force, parallel=parallel)
    result = done.get("result") or {}

    def text(console: Any) -> None:
        applied = result.get("applied") or {}
        line = ", ".join(f"{applied.get(a, 0)} {a}d" for a in ("create", "update", "delete"))
        if done["status"] == "applied":
            console.print(f"[green]Apply complete:[/] {line} (run {result.get('run_id')}).")
        elif done["status"] == "no-op":
            console.print("[green]No changes.[/] Infrastructure matches the spec.")

    app.emit({**result, "plan": done["id"], "status": done["status"]}, text)
    raise_for_apply(done)
    return 0


class RemoteStats:
    """Campaign stats received from the API, shaped like ``CampaignStats`` for the CLI."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def as_dict(self) -> dict[str, Any]:
        return self.data

    def csv_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.data.get("steps", [])]
