"""Invoices for people and machines: HTML (Jinja2, autoescaped), CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

from penguinctl.billing.periods import as_utc

INVOICE_TEMPLATE = "billing/invoice.html.j2"  # in templates/ (penguinctl.shipped)
CSV_COLUMNS = [
    "number", "tenant", "period", "status", "currency", "position", "kind", "description",
    "quantity", "unit_amount_cents", "amount_cents", "total_cents",
]  # fmt: skip


def money(cents: int, currency: str = "usd") -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    text = f"{cents // 100:,}.{cents % 100:02d}"
    return f"{sign}${text}" if currency == "usd" else f"{sign}{text} {currency.upper()}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_json(invoice: dict[str, Any]) -> dict[str, Any]:
    return _plain(invoice)


def html(invoice: dict[str, Any], *, contact: str | None = None) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from penguinctl import shipped

    env = Environment(
        loader=FileSystemLoader([str(d) for d in shipped.search_dirs("templates")]),
        autoescape=select_autoescape(["html", "j2"], default=True),
    )
    start = as_utc(invoice["period_start"]).date()
    last = (as_utc(invoice["period_end"]) - timedelta(days=1)).date()
    return env.get_template(INVOICE_TEMPLATE).render(
        inv=invoice,
        contact=contact,
        period_range=f"{start} to {last}",
        issued=as_utc(invoice["created_at"]).date(),
        money=lambda c: money(c, invoice["currency"]),
    )


def _safe_cell(value: Any) -> Any:
    """Spreadsheet formula injection: a text cell starting with = + - @ is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(invoices: list[dict[str, Any]]) -> str:
    """One row per invoice line (an invoice without lines gets one row)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for inv in invoices:
        base = {
            k: inv[k] for k in ("number", "tenant", "period", "status", "currency", "total_cents")
        }
        for line in inv.get("lines") or [{}]:
            row = {**base, **{k: line.get(k) for k in CSV_COLUMNS if k in line}}
            writer.writerow({k: _safe_cell(v) for k, v in row.items()})
    return buf.getvalue()


def dumps(invoices: list[dict[str, Any]]) -> str:
    return json.dumps([to_json(i) for i in invoices], indent=2)
