"""`apikeys create | list | revoke | rotate`: API keys for the HTTP API (``/api/v1``)."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

apikeys_app = typer.Typer(
    help="API keys for the HTTP API: a role per key, platform-wide or for one tenant; the "
    "secret is shown once and stored hashed.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl apikeys create --tenant acme --role admin --expires 90d --name ci",
        "penguinctl apikeys create --role readonly            # platform-wide",
        "penguinctl apikeys rotate 0123456789ab --overlap 24h",
        "penguinctl apikeys revoke 0123456789ab",
    ),
)
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="The key's id (its prefix).")]


def register(app: typer.Typer) -> None:
    app.add_typer(apikeys_app, name="apikeys")


def _duration(option: str, text: str):
    from penguinctl.errors import UsageError
    from penguinctl.spec.durations import Duration

    try:
        return Duration(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None


def _print_token(app, data: dict, token: str, verb: str) -> None:
    def text(console) -> None:
        who = data["tenant"] or "the platform"
        console.print(f"API key {data['id']} {verb} ({data['role']} of {who}).", markup=False)
        console.print(f"token (shown once, keep it secret): {token}", markup=False)
        if data.get("expires_at"):
            console.print(f"expires {data['expires_at']}", markup=False)

    app.emit({**data, "token": token}, text)


@apikeys_app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[
        str,
        typer.Option(
            "--role",
            "-r",
            metavar="ROLE",
            help="Tenant key: owner, admin, member, viewer. Platform key (no --tenant): "
            "admin, operator, readonly.",
        ),
    ],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", metavar="TENANT", help="The tenant the key acts for."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", metavar="DURATION", help="Lifetime (90d, 12w); default none."),
    ] = None,
    name: Annotated[str, typer.Option("--name", metavar="TEXT", help="A note (ci, agency).")] = "",
) -> None:
    """Create a key; prints its token once (pgk_<id>_<secret>)."""
    from penguinctl.errors import UsageError
    from penguinctl.identity import keys
    from penguinctl.spec.names import check_name
    from penguinctl.state.db import session_scope

    app = ctx.obj
    if tenant is not None:
        try:
            check_name(tenant)
        except ValueError as exc:
            raise UsageError(f"--tenant: {exc}") from None
    lifetime = _duration("--expires", expires) if expires else None
    with session_scope(app.db) as session:
        key, token = keys.create(
            session,
            tenant=tenant or "",
            role=role,
            actor=app.actor(),
            name=name,
            expires_in=lifetime,
        )
        data = key.to_json(app.now())
    _print_token(app, data, token, "created")


@apikeys_app.command("list")
@output_formats(*ROWS)
def list_keys(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", metavar="TENANT", help="Only this tenant's.")
    ] = None,
) -> None:
    """Keys with their role, tenant, status, expiry and last use (never a secret)."""
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.read_db) as session:
        found = [k.to_json(app.now()) for k in keys.list_keys(session, tenant=tenant)]

    def text(console) -> None:
        from penguinctl.cli.render import table

        if not found:
            console.print("No API keys. Create one: penguinctl apikeys create --role ROLE")
            return
        rows = [
            [k["id"], k["tenant"] or "platform", k["role"], k["status"], k["name"] or "-",
             k["expires_at"] or "never", k["last_used_at"] or "never"]
            for k in found
        ]  # fmt: skip
        table(console, ["id", "tenant", "role", "status", "name", "expires", "last used"], rows)

    app.emit(found, text)


@apikeys_app.command("revoke")
def revoke(ctx: typer.Context, key: KeyArg) -> None:
    """Revoke a key at once (its current and previous secrets)."""
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.db) as session:
        data = keys.revoke(session, key, actor=app.actor()).to_json(app.now())
    app.emit(data, lambda c: c.print(f"API key {data['id']} revoked.", markup=False))


@apikeys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    key: KeyArg,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap", metavar="DURATION", help="How long the old secret keeps working (0s)."
        ),
    ] = "24h",
) -> None:
    """Give a key a new secret (printed once); the old one works for --overlap."""
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.db) as session:
        found, token = keys.rotate(
            session, key, actor=app.actor(), overlap=_duration("--overlap", overlap)
        )
        data = found.to_json(app.now())
    _print_token(app, data, token, "rotated")
