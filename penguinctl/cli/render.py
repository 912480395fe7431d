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
    """Rows for a person: a Rich table on a terminal (long values fold onto more lines, never
    cut; ``-o wide`` keeps every row on one line), tab-separated lines when stdout is not a
    terminal (header first; a cell with several lines gives one row per line, the other cells
    repeated). Cells are Rich markup (callers escape what they did not write)."""
    if not console.is_terminal:
        console.print(
            "\n".join(_tsv(columns, rows)), markup=False, highlight=False, emoji=False, crop=False
        )
        return
    from rich.table import Table

    t = Table(title=title, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[_markup(v) for v in row])
    console.print(t)


def cell_text(value: Any) -> str:
    """A cell value as plain text: lists one item per line, mappings ``key=value``."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell_text(v)}" for k, v in value.items())
    return str(value)


def _markup(value: Any) -> str:
    if isinstance(value, str):
        return value
    from rich.markup import escape

    return escape(cell_text(value))


def _tsv(columns: list[str], rows: list[list[Any]]) -> list[str]:
    from rich.text import Text

    lines = ["\t".join(columns)]
    for row in rows:
        cells = [
            (Text.from_markup(v).plain if isinstance(v, str) else cell_text(v)).split("\n")
            for v in row
        ]
        height = max((len(c) for c in cells), default=1)
        for i in range(height):
            parts = [c[i] if i < len(c) else c[-1] if len(c) == 1 else "" for c in cells]
            lines.append("\t".join(p.replace("\t", " ") for p in parts))
    return lines


def csv_text(data: Any) -> str:
    """``-o csv`` of a list of mappings: one row each, the union of their keys as the header."""
    import csv
    import io

    from penguinctl.errors import UsageError

    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise UsageError("-o csv: this result is not a list of rows", hint="use -o json")
    columns: dict[str, None] = {}
    for item in data:
        columns.update(dict.fromkeys(item))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for item in data:
        writer.writerow(
            [
                json.dumps(v, default=str, separators=(",", ":"))
                if isinstance(v, dict | list)
                else cell_text(v)
                for v in (item.get(c) for c in columns)
            ]
        )
    return buf.getvalue()
