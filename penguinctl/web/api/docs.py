"""``/api/v1/docs``: a self-contained page listing the API's operations from its OpenAPI
document (no CDN, no script: the server renders it)."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
code{{background:#f3f3f3;padding:0 .2em}} td{{padding:.2em .6em;vertical-align:top}}
.m{{font-weight:bold;font-family:monospace}}</style></head><body>
<h1>{title} {version}</h1>
<p>{description}</p>
<p>Machine-readable: <a href="openapi.json"><code>openapi.json</code></a> (OpenAPI 3.1).
Authenticate with <code>Authorization: Bearer pgk_...</code>.</p>
<table>{rows}</table></body></html>
"""


@router.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    spec = request.app.openapi()
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td class=m>{html.escape(method.upper())}</td>"
                f"<td><code>/api/v1{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td></tr>"
            )
    info = spec["info"]
    page = _PAGE.format(
        title=html.escape(info["title"]),
        version=html.escape(info["version"]),
        description=html.escape(info.get("description", "")),
        rows="\n".join(rows),
    )
    return HTMLResponse(
        page, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
    )
