"""Run a playbook on one host: render every step, gather the facts of all of them in one round
trip, then plan and apply step by step, stopping at the first failure.

Variables: ``host`` (the connection's address) and ``server`` (defaults to ``host``), then the
run-time ``variables``, then the playbook's ``vars`` defaults for names not given at run time
(defaults are templates, rendered in order, so one may use the ones before it).

Errors that mean the host could not be worked on at all (unreachable, host key changed,
authentication refused) propagate, so fan-out classifies the host; anything else fails the step
it happened in and ends the run for that host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from penguinctl.errors import PenguinError
from penguinctl.playbook import model as M
from penguinctl.playbook.facts import FactCache
from penguinctl.playbook.ops import OPS, Change, File, OpContext, Operation
from penguinctl.playbook.render import (
    RenderError,
    render_string,
    render_template,
    render_value,
    truthy,
)
from penguinctl.remote.errors import HostKeyChanged, SshAuthFailed, SshKeyInvalid, SshUnreachable

_FATAL = (SshUnreachable, HostKeyChanged, SshAuthFailed, SshKeyInvalid)


def build_variables(
    playbook: M.Playbook, variables: Mapping[str, Any], host: str, templates_dir: Path | None
) -> dict[str, Any]:
    context: dict[str, Any] = {"host": host, "server": host, **variables}
    for key, value in playbook.doc.vars.items():
        if key not in variables:
            context[key] = render_value(value, context, templates_dir)
    return context


def build_step(
    step: M.Step, context: Mapping[str, Any], templates_dir: Path | None
) -> Operation | None:
    """The step's operation with rendered params; None when its ``when`` is false. Raises
    ``RenderError``."""
    if step.when is not None and not truthy(render_value(step.when, context, templates_dir)):
        return None
    raw = step.params.model_dump()
    rendered = render_value(raw, context, templates_dir)
    try:
        params: Any = type(step.params).model_validate(rendered)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"]))
        raise RenderError(f"{step.op}.{where}: {first['msg']} (after rendering)") from None
    if step.op == "file":
        if params.template is not None:
            data = render_template(params.template, context, templates_dir)
        else:
            data = (params.content or "").encode("utf-8")
        return File(params, data)
    return OPS[step.op](params)


def run_playbook(
    conn: Any,
    playbook: M.Playbook,
    variables: Mapping[str, Any],
    *,
    check: bool = False,
    sudo: bool = False,
    templates_dir: Path | None = None,
    on_step: Callable[[M.StepResult], None] | None = None,
    on_start: Callable[[M.Step], None] | None = None,
) -> M.PlaybookResult:
    """Run ``playbook`` over ``conn`` (an ``SshConnection``); see the module docstring.
    ``on_start``/``on_step`` are called (on this thread) before and after each step."""
    result = M.PlaybookResult(conn.host, [], check)
    ctx = OpContext(
        conn,
        FactCache(lambda argv: conn.run(argv, sudo=sudo)),
        check=check,
        sudo=sudo,
        templates_dir=templates_dir,
    )
    built: list[Operation | Exception | None] = []
    try:
        ctx.variables = build_variables(playbook, variables, conn.host, templates_dir)
    except RenderError as exc:
        built = [exc]
    else:
        for step in playbook.steps:
            try:
                built.append(build_step(step, ctx.variables, templates_dir))
            except RenderError as exc:
                built.append(exc)
                break
    wanted = []
    for op in built:
        if isinstance(op, Exception):
            break
        if op is not None:
            wanted.extend(op.facts())
    try:
        ctx.facts.gather(wanted)
    except _FATAL:
        raise
    except PenguinError:
        pass  # each step fetches its own facts and reports the failure where it happens

    for index, step in enumerate(playbook.steps):
        if index >= len(built):
            break
        if on_start is not None:
            on_start(step)
        res = _run_step(ctx, step, built[index])
        if isinstance(built[index], RenderError):
            res.detail = f"{playbook.location(index)}: {res.detail}"
        result.steps.append(res)
        if on_step is not None:
            on_step(res)
        if res.status == "failed":
            break
    return result


def _run_step(ctx: OpContext, step: M.Step, op: Operation | Exception | None) -> M.StepResult:
    from penguinctl.masking import mask

    start = time.monotonic()
    res = M.StepResult(step.name, step.op, "ok")
    try:
        if isinstance(op, Exception):
            raise op
        if op is None:
            res.detail = "skipped: `when` is false"
        else:
            change: Change | None = op.plan(ctx)
            if change is None:
                res.detail = op.detail
            elif ctx.check:
                res.status, res.detail, res.diff = "changed", change.summary, change.diff
            else:
                detail = op.apply(ctx, change)
                ctx.facts.invalidate(op.touches())
                if detail is None:
                    res.detail = op.detail
                else:
                    res.status, res.detail, res.diff = "changed", detail, change.diff
    except _FATAL:
        raise
    except Exception as exc:  # the step fails; the host's run ends here
        res.status = "failed"
        text = " ".join(str(exc).split())
        res.detail = mask(
            text if isinstance(exc, PenguinError) else f"{type(exc).__name__}: {text}"
        )
    res.duration = time.monotonic() - start
    return res


__all__ = ["build_step", "build_variables", "render_string", "run_playbook"]
