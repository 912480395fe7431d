"""All human-facing rendering: plans, apply summaries, tables. JSON/YAML dumps for machines."""

from __future__ import annotations

import json
from typing import Any

from penguinctl.resources import COMPUTED

_SYMBOL = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}


def dump(data: Any, fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False).rstrip()
    return json.dumps(data, indent=2, default=str)


def _fmt_value(value: Any) -> str:
    if value == COMPUTED:
        return COMPUTED
    if isinstance(value, str):
        return json.dumps(value) if len(value) <= 120 else json.dumps(value[:117] + "...")
    return json.dumps(value, default=str)


def render_plan(console, plan, *, title: str = "Plan") -> None:
    from rich.markup import escape

    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if plan.empty:
        console.print("[green]No changes.[/] Infrastructure matches the spec.")
        return
    lines = []  # one print: Rich's per-call overhead dominates for thousands of changes
    for ch in plan.changes:
        sym, color = _SYMBOL[ch.action.value]
        lines.append(
            f"[{color}]{sym} {ch.action.value:6}[/] {escape(ch.key.address)}"
            f"  [dim]({escape(ch.key.tenant or 'shared')}, {escape(ch.provider)})[/]"
        )
        if ch.action.value == "update":
            before, after = ch.before or {}, ch.after or {}
            for k in sorted(set(before) | set(after)):
                if before.get(k) != after.get(k):
                    lines.append(
                        f"      {escape(k)}: {escape(_fmt_value(before.get(k)))} -> "
                        f"{escape(_fmt_value(after.get(k)))}"
                    )
    console.print("\n".join(lines))
    c = plan.counts()
    console.print(
        f"\n{title}: [green]{c['create']} to create[/], [yellow]{c['update']} to update[/], "
        f"[red]{c['delete']} to delete[/]. Checksum {plan.checksum()[:16]}"
    )


def render_apply(console, report) -> None:
    data = report.to_json()
    applied = data["applied"]
    parts = [f"{applied.get(a, 0)} {a}d" for a in ("create", "update", "delete")]
    line = ", ".join(parts)
    if report.ok:
        console.print(f"[green]Apply complete:[/] {line} (run {report.run_id}).")
    else:
        console.print(
            f"[red]Apply incomplete:[/] {line}; {len(report.failed)} failed, "
            f"{len(report.skipped)} skipped (run {report.run_id})."
        )
        for ch, err in report.failed[:20]:
            console.print(f"  [red]x[/] {ch.key.address}: {err}")


def table(console, columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    from rich.table import Table

    t = Table(title=title, header_style="bold")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    console.print(t)
