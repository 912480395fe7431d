"""`domains transfer DOMAIN --to TENANT`: move a domain, with its DKIM keys, records and
mailboxes, to another tenant (``penguinctl.transfer``)."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.commands_apply import LockTimeout


def transfer(
    ctx: typer.Context,
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="The domain to move.")],
    to: Annotated[str, typer.Option("--to", metavar="TENANT", help="The tenant it moves to.")],
    lock_timeout: LockTimeout = 0.0,
) -> int:
    """Move DOMAIN to tenant TENANT, keeping its DKIM keys, DNS records, MailU domain and
    mailboxes (nothing is deleted or re-created): the records and secrets change owner.

    \b
    Refused (exit 2) when the tenant does not exist, its plan does not allow one more domain
    and its mailboxes, the domain's server belongs to the old tenant, the new tenant lacks
    the domain's DNS provider, or an active campaign of the old tenant sends from it.
    Both tenants are locked; the move is audited for both and each gets a
    domain.transferred event. Afterwards the old tenant's spec may no longer name the
    domain: move its Domain document to the new tenant's spec (metadata.tenant).
    Asks unless --yes.
    """
    from penguinctl import transfer as moving
    from penguinctl.billing.catalog import load_catalog
    from penguinctl.errors import UsageError
    from penguinctl.state.lock import TenantLock

    app = ctx.obj
    catalog = load_catalog(app.env)
    plan = moving.prepare(app.db, domain, to, catalog=catalog)
    if not app.yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError(
                "transfer needs confirmation but stdin is not a terminal", hint="add --yes"
            )
        if not typer.confirm(
            f"Move {plan.domain} from tenant {plan.source} to tenant {plan.target}?", default=False
        ):
            raise UsageError("not confirmed; nothing was changed")
    with TenantLock(
        app.db, [plan.source, plan.target], operation="domains-transfer", actor=app.actor(),
        timeout=lock_timeout,
    ):  # fmt: skip
        plan = moving.prepare(app.db, domain, to, catalog=catalog)  # again, under the lock
        backend = app.secrets()
        moving.copy_secrets(backend, plan)
        moving.record(app.db, plan, actor=app.actor())
        left = moving.finish(backend, plan)
    result = {**plan.to_json(), "left_at_old_paths": left}

    def text(console) -> None:
        c = plan.counts()
        console.print(
            f"Moved {plan.domain} from tenant {plan.source} to tenant {plan.target}: "
            f"{c['dkim_keys']} DKIM key(s), {c['records']} record(s), {c['mailboxes']} "
            f"mailbox(es), {c['aliases']} alias(es); nothing re-created."
        )
        console.print(
            f"Next: move the Domain document of {plan.domain} into tenant {plan.target}'s spec "
            f"(metadata.tenant: {plan.target}); tenant {plan.source}'s spec may no longer name it."
        )
        for path in left:
            console.print(f"[yellow]left behind[/] {path}: delete it with `penguinctl secrets`")

    app.emit(result, text)
    return 0
