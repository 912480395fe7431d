"""Specs: load (from files, or from documents sent over the API), validate, plan, apply.

``apply`` is the CLI's ``plan_and_apply``: the tenants' lock held from planning to the end, the
saved plan's checksum verified under it, unsafe plans refused without ``force``, suspended
tenants read-only, the applied documents recorded for ``serve``'s jobs. The caller supplies the
interactive parts (rendering the plan, confirming) as callbacks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from penguinctl.errors import (
    ChecksumMismatch,
    Forbidden,
    Location,
    SpecError,
    SpecIssue,
    UnsafePlan,
    UsageError,
)
from penguinctl.services.context import ServiceContext

MAX_DOCUMENT_FILES = 200
_SAFE_NAME = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def load_files(files: Sequence[Path]) -> Any:
    from penguinctl.spec import load_specs

    if not files:
        raise UsageError("no spec given", hint="pass -f FILE or -f DIRECTORY")
    return load_specs(files)


def _file_name(name: str, index: int) -> str:
    """A flat, safe name for an uploaded document (kept as the client wrote it in errors)."""
    base = "".join(c if c in _SAFE_NAME else "_" for c in name.rsplit("/", 1)[-1])[:100]
    base = base.lstrip(".") or f"spec-{index}"
    if not base.endswith((".yaml", ".yml")):
        base += ".yaml"
    return f"{index:03d}-{base}"


@contextmanager
def _materialised(documents: Mapping[str, str]) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """The documents as files in a private temporary directory: (paths, path -> client name)."""
    if not documents:
        raise UsageError("no spec documents given", hint='send {"files": {"NAME": "YAML"}}')
    if len(documents) > MAX_DOCUMENT_FILES:
        raise UsageError(f"at most {MAX_DOCUMENT_FILES} files per request")
    folder = Path(tempfile.mkdtemp(prefix="penguinctl-api-"))
    try:
        paths, names = [], {}
        for i, (name, text) in enumerate(documents.items()):
            path = folder / _file_name(name, i)
            path.write_text(text, encoding="utf-8")
            paths.append(path)
            names[str(path)] = name
        yield paths, names
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _renamed(exc: SpecError, names: Mapping[str, str]) -> SpecError:
    issues = []
    for issue in exc.issues:
        loc = issue.location
        shown = names.get(loc.file, loc.file)
        for path, name in names.items():  # a message may name a file too
            shown = shown.replace(path, name)
        message = issue.message
        for path, name in names.items():
            message = message.replace(path, name)
        issues.append(SpecIssue(Location(shown, loc.line, loc.col), message))
    return SpecError(issues)


def load_documents(documents: Mapping[str, str], *, tenant: str | None) -> Any:
    """Specs sent over the API (``{client file name: YAML text}``, multi-document YAML allowed),
    loaded exactly as files are; errors name the client's file names. Refused: ``file:`` and
    ``env:`` secret references (the server's files and environment are not the caller's), and
    for a tenant key any document of another tenant or of the platform (403)."""
    from penguinctl.spec import load_specs

    with _materialised(documents) as (paths, names):
        try:
            specs = load_specs(paths)
        except SpecError as exc:
            raise _renamed(exc, names) from None
        issues = []
        for doc in specs.documents:
            for ref in _secret_refs(doc.spec):
                if ref.scheme in ("file", "env"):
                    issues.append(
                        SpecIssue(
                            _where(doc, names),
                            f"{ref.scheme}: secret references are not accepted over the API "
                            "(use vault: or keystore:)",
                        )
                    )
        if issues:
            raise SpecError(issues)
        if tenant is not None:
            check_owned(specs, tenant)
        specs.files = [Path(names[str(p)]) for p in specs.files]
    return specs


def _where(doc: Any, names: Mapping[str, str]) -> Location:
    loc = doc.location
    return Location(names.get(loc.file, loc.file), loc.line, loc.col)


def _secret_refs(value: Any, depth: int = 0) -> Iterator[Any]:
    from pydantic import BaseModel

    from penguinctl.spec.refs import SecretRef

    if depth > 20:
        return
    if isinstance(value, SecretRef):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_refs(getattr(value, name, None), depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _secret_refs(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _secret_refs(v, depth + 1)


def check_owned(specs: Any, tenant: str) -> None:
    """A tenant key submits its own tenant's documents only (403 otherwise)."""
    from penguinctl.control.specs import owner

    foreign = sorted({f"{d.kind}/{d.name}" for d in specs.documents if owner(d) != tenant})
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise Forbidden(
            f"a key of tenant {tenant} may apply that tenant's documents only: {shown}",
            hint=f"set metadata.tenant: {tenant} on every document",
        )


def counts(specs: Any) -> dict[str, int]:
    return {
        "tenants": len(specs.tenants),
        "servers": len(specs.servers),
        "dns_providers": len(specs.dns_providers),
        "domains": len(specs.domains),
        "mailboxes": sum(len(d.spec.mailboxes) for d in specs.domains.values()),
    }


def engine(ctx: ServiceContext, specs: Any) -> Any:
    from penguinctl.engine import Engine

    return Engine(
        specs=specs,
        db_engine=ctx.db,
        secrets_factory=ctx.secrets,
        zones_dir=ctx.settings.zones_dir,
        today=ctx.today(),
        actor=ctx.actor,
        env=ctx.env,
    )


def plan(
    ctx: ServiceContext,
    specs: Any,
    *,
    destroy: bool = False,
    targets: Sequence[str] = (),
    refresh: bool = True,
) -> Any:
    return engine(ctx, specs).plan(destroy=destroy, targets=targets, refresh=refresh)


def plan_json(the_plan: Any) -> dict[str, Any]:
    return {**the_plan.to_json(), "unsafe": the_plan.unsafe_reasons()}


def apply(
    ctx: ServiceContext,
    specs: Any,
    *,
    destroy: bool = False,
    targets: Sequence[str] = (),
    force: bool = False,
    lock_timeout: float = 0.0,
    parallel: int = 4,
    refresh: bool = True,
    checksum: str | None = None,
    checksum_source: str = "saved plan",
    checksum_hint: str = "plan again and review it",
    on_wait: Callable[[Any], None] | None = None,
    on_plan: Callable[[Any], None] | None = None,
    confirm: Callable[[Any], bool] | None = None,
    progress: Callable[[Any, Any, int], Any] | None = None,
) -> tuple[Any, Any]:
    """Plan ``specs`` and apply the plan, holding the tenants' lock throughout.

    Returns ``(plan, report)``; the report is None when the plan is empty (nothing applied).
    ``checksum``: the plan must still have it (``ChecksumMismatch`` otherwise). ``on_plan`` sees
    the plan before it is applied; ``confirm`` (None: confirmed) may decline (``UsageError``);
    ``progress(engine, plan, parallel)`` applies with progress reporting instead of plainly.
    The caller raises for a failed report (``engine.raise_for_report``)."""
    from penguinctl.state.lock import TenantLock

    eng = engine(ctx, specs)
    lock_names = eng.tenants or [""]
    with TenantLock(
        ctx.db,
        lock_names,
        operation="destroy" if destroy else "apply",
        actor=eng.actor,
        timeout=lock_timeout,
        on_wait=on_wait,
    ):
        eng.close_interrupted_runs()
        the_plan = eng.plan(destroy=destroy, targets=list(targets), refresh=refresh)
        if checksum is not None and checksum != the_plan.checksum():
            raise ChecksumMismatch(
                f"{checksum_source} no longer matches the spec and state "
                f"(saved {checksum[:16]}, now {the_plan.checksum()[:16]})",
                hint=checksum_hint,
            )
        if the_plan.empty:
            record_specs(ctx, eng, specs, run_id=None, destroy=destroy)
            return the_plan, None
        if on_plan is not None:
            on_plan(the_plan)
        reasons = the_plan.unsafe_reasons()
        if not destroy:
            reasons += suspended_reasons(ctx, the_plan)
        if reasons and not force:
            raise UnsafePlan(reasons)
        if confirm is not None and not confirm(the_plan):
            raise UsageError("not confirmed; nothing was changed", hint="use --yes in scripts")
        if progress is not None:
            report = progress(eng, the_plan, parallel)
        else:
            report = eng.apply(the_plan, parallel=parallel)
        if not destroy or report.ok:
            record_specs(ctx, eng, specs, run_id=report.run_id, destroy=destroy)
        return the_plan, report


def record_specs(ctx: ServiceContext, eng: Any, specs: Any, *, run_id: int | None,
                 destroy: bool) -> None:  # fmt: skip
    """Record the applied documents per tenant (what ``serve``'s jobs run from), or forget them
    after a destroy."""
    from penguinctl.control import specs as recorded

    tenants = set(eng.tenants) | {recorded.owner(doc) for doc in specs.documents}
    recorded.record(ctx.db, specs, tenants=tenants, run_id=run_id, actor=eng.actor,
                    destroy=destroy)  # fmt: skip


def suspended_reasons(ctx: ServiceContext, the_plan: Any) -> list[str]:
    """A tenant suspended for an unpaid invoice is read-only: changing it needs --force."""
    from penguinctl.billing.dunning import suspended_tenants

    with ctx.db.connect() as conn:
        names = suspended_tenants(conn, {c.key.tenant for c in the_plan.changes if c.key.tenant})
    return [f"changes tenant {name}, suspended for an unpaid invoice (read-only)" for name in names]
