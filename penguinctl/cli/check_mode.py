"""`apply --check`: what an apply would change, on the servers too, without changing anything.

The plan (state store and live DNS) is computed as for `plan`; then every server with a managed
mail stack is visited over SSH and its playbook is run in check mode: each step reads the host's
facts and says whether it would change, with unified diffs of files (secret files show no
content; revealed secret values are masked). Hosts are visited in parallel, each failure
isolated. The exit code is 0, or with `--detailed-exitcode` 2 when anything would change.
"""

from __future__ import annotations

from typing import Any


def run_check(app, engine, *, parallel: int, detailed_exitcode: bool, detail: bool = False) -> int:
    from penguinctl.cli.render import render_plan
    from penguinctl.errors import PLAN_CHANGES_PENDING, PartialApply, ProviderError
    from penguinctl.masking import mask
    from penguinctl.remote.fanout import fan_out

    the_plan = engine.plan(destroy=False, targets=(), refresh=True)
    stacks = sorted(
        (res for key, res in engine.desired.items() if key.kind == "mailstack"),
        key=lambda r: r.key.name,
    )

    def visit(res) -> Any:
        provider = engine.providers.get(res.provider)
        return provider.converge(res.data, check=True)

    summary = fan_out(stacks, visit, parallel=parallel, name=lambda r: r.key.name)
    hosts = []
    for result in summary.results:
        out = result.value
        steps = [] if out is None else out.steps
        hosts.append(
            {
                "server": result.host,
                "status": result.status if out is None else ("changed" if out.changed else "ok"),
                "changed": [] if out is None else out.changes(),
                "steps": [
                    {
                        "name": s.name,
                        "op": s.op,
                        "status": s.status,
                        "detail": mask(s.detail or ""),
                        "diff": mask(s.diff) if s.diff else None,
                    }
                    for s in steps
                ],
                "error": result.error,
            }
        )

    def text(console) -> None:
        from rich.markup import escape

        render_plan(console, the_plan, detail=detail)
        for host in hosts:
            if host["error"]:
                console.print(f"[red]{host['server']}: {escape(host['error'])}[/]")
                continue
            if not host["changed"]:
                console.print(f"[green]{host['server']}: mail stack converged[/]")
                continue
            console.print(f"[yellow]{host['server']}: would change {', '.join(host['changed'])}[/]")
            for step in host["steps"]:
                if step["diff"]:
                    console.print(escape(step["diff"].rstrip("\n")), markup=True)

    app.emit({**the_plan.to_json(), "hosts": hosts}, text)
    bad = [h for h in hosts if h["error"]]
    if bad:
        first = bad[0]
        msg = (
            f"{len(bad)} of {len(hosts)} server(s) could not be checked; "
            f"first: {first['server']}: {first['error']}"
        )
        raise (PartialApply if len(bad) < len(hosts) else ProviderError)(msg)
    drift = not the_plan.empty or any(h["changed"] for h in hosts)
    return PLAN_CHANGES_PENDING if detailed_exitcode and drift else 0
