"""`secrets migrate --to vault [--verify]` (keystore to Vault) and `secrets migrate-layout
[--dry-run]` (old ownerless paths to tenant paths, ``penguinctl.secret_layout``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from penguinctl.cli.secrets_common import _audit, _progress


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return False
    return {k: v.reveal() for k, v in a.items()} == {k: v.reveal() for k, v in b.items()}


def migrate(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="BACKEND", help="Target backend: vault.")],
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="After copying, re-read every secret in Vault and compare it."
        ),
    ] = False,
) -> int:
    """Copy every keystore secret to Vault. Each copy is read back and compared; an identical
    copy already in Vault is skipped, so the command can be re-run safely."""
    from penguinctl.errors import SecretError, UsageError
    from penguinctl.providers.secrets.vault import VaultBackend

    app = ctx.obj
    app.any_secrets_layout = True  # copies paths as they are
    if to != "vault":
        raise UsageError(f"--to {to!r}: only 'vault' is supported")
    source = app.keystore()
    target = app.secrets()
    if not isinstance(target, VaultBackend):
        target = VaultBackend.from_env(app.env)
    paths = source.list()
    counts = {"total": len(paths), "copied": 0, "skipped": 0, "verified": 0, "failed": 0}
    failed: list[str] = []
    events: list[dict[str, Any]] = []
    try:
        with _progress(app, len(paths)) as advance:
            for path in paths:
                fields = source.get(path)
                if fields is None:  # removed meanwhile
                    advance()
                    continue
                if _same(target.get(path), fields):
                    counts["skipped"] += 1
                    result = "skipped"
                else:
                    target.put(path, {k: v.reveal() for k, v in fields.items()})
                    if _same(target.get(path), fields):
                        counts["copied"] += 1
                        result = "copied"
                    else:
                        counts["failed"] += 1
                        failed.append(path)
                        result = "error"
                events.append(
                    {
                        "action": "secret.migrate",
                        "path": path,
                        "result": result,
                        "backend": "vault",
                        "details": {"from": "keystore", "fields": sorted(fields)},
                    }
                )
                advance()
        if verify:
            for path in paths:
                if path in failed:
                    continue
                if _same(target.get(path), source.get(path)):
                    counts["verified"] += 1
                else:
                    counts["failed"] += 1
                    failed.append(path)
                    events.append(
                        {
                            "action": "secret.migrate.verify",
                            "path": path,
                            "result": "error",
                            "backend": "vault",
                        }
                    )
    finally:
        _audit(app, events)
    data = {"to": "vault", "counts": counts, "failed": failed}

    def text(console) -> None:
        from rich.markup import escape

        line = (
            f"{counts['total']} secret(s): {counts['copied']} copied, "
            f"{counts['skipped']} already in Vault"
        )
        if verify:
            line += f", {counts['verified']} verified"
        console.print(line + (f", [red]{counts['failed']} failed[/]" if failed else "."))
        for p in failed:
            console.print(f"[red]failed[/] {escape(p)}")

    app.emit(data, text)
    if failed:
        raise SecretError(
            f"{len(failed)} secret(s) did not read back identically from Vault: {failed[0]}"
            + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
            hint="re-run `penguinctl secrets migrate --to vault`; identical copies are skipped",
        )
    return 0


def migrate_layout(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show where each secret would go; change nothing.")
    ] = False,
) -> int:
    """Move secrets of the old layout (domains/, mailboxes/, servers/, backups/...) under their
    owner (tenants/<tenant>/... or platform/...), from the state store's records. Each is
    copied, read back, compared and only then deleted at its old path: re-run it after a crash
    and it resumes. Every move is audited (paths, never values)."""

    from penguinctl.errors import PartialApply, SecretError
    from penguinctl.plan.confine import recorded_owners
    from penguinctl.secret_layout import migrate, plan_moves
    from penguinctl.state.lock import TenantLock
    from penguinctl.state.models import ResourceRow

    app = ctx.obj
    app.any_secrets_layout = True
    backend = app.secrets()
    with app.db.connect() as conn:
        table = ResourceRow.__table__
        tenants = sorted(
            {t for (t,) in conn.execute(table.select().with_only_columns(table.c.tenant))}
        )
    # no apply of any tenant runs meanwhile (it would write keys at the paths being moved)
    with TenantLock(app.db, sorted({"", *tenants}), operation="migrate-layout", actor=app.actor()):
        moves = plan_moves(backend, recorded_owners(app.db))
        outcomes = []
        if not dry_run:
            events: list[dict[str, Any]] = []

            def audit(o) -> None:
                events.append(
                    {
                        "action": "secret.layout.move",
                        "path": o.move.old,
                        "tenant": o.move.owner or "",
                        "result": "ok" if o.result in ("moved", "already", "kept") else "error",
                        "details": {"to": o.move.new, "outcome": o.result, "note": o.detail},
                    }
                )

            with _progress(app, len(moves), "Moving secrets") as advance:
                try:
                    outcomes = migrate(backend, moves, on_outcome=lambda o: (audit(o), advance()))
                finally:
                    _audit(app, events)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    bad = [o for o in outcomes if o.result in ("conflict", "failed")]
    data = {
        "backend": backend.name,
        "dry_run": dry_run,
        "moves": [m.to_json() for m in moves],
        "counts": counts,
        "problems": [{**o.move.to_json(), "result": o.result, "detail": o.detail} for o in bad],
    }

    def text(console) -> None:
        from rich.markup import escape

        if dry_run:
            for m in moves:
                console.print(escape(f"{m.old} -> {m.new}" + (f" ({m.note})" if m.note else "")))
            console.print(f"{len(moves)} secret(s) would move; nothing was changed.")
            return
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to move"
        console.print(f"{backend.name}: {summary}.")
        for o in bad:
            console.print(f"[red]{o.result}[/] {escape(o.move.old)}: {escape(o.detail)}")

    app.emit(data, text)
    if bad:
        msg = f"{len(bad)} secret(s) not moved; first: {bad[0].move.old}: {bad[0].detail}"
        hint = "resolve it, then run `penguinctl secrets migrate-layout` again; moved ones stay"
        if any(o.result == "moved" for o in outcomes):
            raise PartialApply(msg, hint=hint)
        raise SecretError(msg, hint=hint)
    return 0
