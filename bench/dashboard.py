"""Dashboard server time: the Domains page and a campaign page with 10,000 domains and a
100,000-send campaign, against JSON for the same data in the same run (p50, p99 of the time the
server spends on each request, measured inside the ASGI app, so the client's parsing is not in
it).

    python bench/dashboard.py                                # SQLite, 200 requests per route
    python bench/dashboard.py --backends sqlite,postgres --requests 300
    python bench/dashboard.py --domains 2000 --sends 20000  # a quicker run

The state is written in bulk (tests/dashkit.py ``seed_scale``: every domain with MX, SPF, DMARC
and DKIM records, a DKIM key and a check result; one campaign whose leads were each sent step 1
over the last 30 days). The app is the one ``serve`` hosts (``create_app``) on uvicorn in this
process, with a timing wrapper around it and two extra JSON routes mounted by this script only:

- ``/bench/domains.json``: the Domains page's own query (``dashboard.domains.page``), its rows
  as JSON instead of HTML: the anchor for the cost of the HTML rendering;
- ``/bench/campaign.json``: the campaign page's own queries (``dashboard.campaigns.detail``)
  as JSON: the anchor for the campaign page (the REST API's ``GET /api/v1/campaigns/big/stats``
  is measured too: it computes the funnel and A/B tests only, not the charts, providers and
  mailboxes the page also shows);
- and the REST API's ``GET /api/v1/domains?limit=50`` (one keyset page of domain summaries:
  a lighter query than the page's, which also reads records, keys and the latest checks).

The campaign page keeps its per-day counts for a minute and its recipient-domain counts for ten
(``dashboard.campaigns.CACHE``); the "cold caches" rows clear that cache before each request.
Requests alternate between routes (round robin) over one keep-alive connection, after 10
warm-ups each. Standard output: Markdown; ``--json FILE`` writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import Request

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


class Timed:
    """ASGI wrapper: the server time of each request (first byte in to last byte out)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[tuple[str, float]] = []  # (path?query, seconds), in completion order

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            query = scope.get("query_string", b"").decode()
            target = scope["path"] + (f"?{query}" if query else "")
            self.times.append((target, time.perf_counter() - start))


def _anchor_routes(app: Any) -> None:
    from fastapi.responses import JSONResponse

    from penguinctl import clock
    from penguinctl.web.dashboard import campaigns, domains

    def domains_json(request: Request, page_no: int = 1, q: str = "") -> Any:
        found = domains.page(request.app.state.web.db, None, q=q, page_no=page_no, now=clock.now())
        rows = [
            {
                "name": r.name,
                "tenant": r.tenant,
                "server": r.server,
                "cells": {k: c.__dict__ for k, c in r.cells.items()},
            }
            for r in found["rows"]
        ]
        return JSONResponse({"total": found["total"], "page": found["page"], "rows": rows})

    def campaign_json(request: Request, tenant: str, name: str) -> Any:
        db = request.app.state.web.db
        found = campaigns.find(db, None, tenant, name)
        d = campaigns.detail(db, found, clock.now())
        return JSONResponse(
            {
                "stats": d["stats"].as_dict(),
                "sends_per_day": d["sends_per_day"],
                "replies_per_day": d["replies_per_day"],
                "providers": d["providers"],
                "mailboxes": [
                    {**m, "last_claim_at": str(m["last_claim_at"])} for m in d["mailboxes"]
                ],
                "ambiguous": [a.to_json() for a in d["ambiguous"]],
            }
        )

    app.add_api_route("/bench/domains.json", domains_json, methods=["GET"])
    app.add_api_route("/bench/campaign/{tenant}/{name}.json", campaign_json, methods=["GET"])
    # before the unsubscribe fallback, which answers any other path
    app.router.routes.insert(0, app.router.routes.pop())
    app.router.routes.insert(0, app.router.routes.pop())


def _serve(engine: Any, secrets: Any) -> tuple[Any, Timed, int, Any]:
    import socket

    from penguinctl.web.app import create_app
    from penguinctl.web.metrics import Metrics
    from penguinctl.web.server import make_server
    from penguinctl.web.state import WebState

    state = WebState(db=engine, secrets=lambda: secrets, env={}, metrics=Metrics(engine))
    wrapped = create_app(state)
    inner = wrapped
    while not hasattr(inner, "router"):  # AccessLog(BodyLimit(FastAPI))
        inner = inner.app
    _anchor_routes(inner)
    timed = Timed(wrapped)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = make_server(timed, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started and time.monotonic() < end:
        time.sleep(0.01)
    return server, timed, port, sock


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_backend(url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import httpx
    from campaignkit import keystore
    from dashkit import Dash, make_key, seed_scale

    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    t0 = time.perf_counter()
    seed_scale(engine, domains=args.domains, sends=args.sends)
    seeded = time.perf_counter() - t0
    token = make_key(engine, "", "readonly")
    server, timed, port, sock = _serve(engine, keystore(workdir))
    base = f"http://127.0.0.1:{port}"
    dash = Dash(base)
    assert dash.login(token).status_code == 303
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    mid = max(1, args.domains // 50 // 2)
    routes = {
        "Domains page (page 1)": (dash.client, "/dashboard/domains"),
        f"Domains page (page {mid})": (dash.client, f"/dashboard/domains?page_no={mid}"),
        "Domains page (search)": (dash.client, "/dashboard/domains?q=dom0123"),
        "JSON, same query (page 1)": (api, "/bench/domains.json"),
        f"JSON, same query (page {mid})": (api, f"/bench/domains.json?page_no={mid}"),
        "REST API GET /api/v1/domains?limit=50": (api, "/api/v1/domains?limit=50"),
        "Campaign page": (dash.client, "/dashboard/campaigns/bulk/big"),
        "JSON, same queries (campaign)": (api, "/bench/campaign/bulk/big.json"),
        "REST API GET /api/v1/campaigns/big/stats": (
            api,
            "/api/v1/campaigns/big/stats?tenant=bulk",
        ),
        "Campaign page, cold caches": (dash.client, "/dashboard/campaigns/bulk/big"),
        "JSON, same queries (campaign), cold caches": (api, "/bench/campaign/bulk/big.json"),
    }
    for client, path in routes.values():
        for _ in range(10):
            res = client.get(path)
            assert res.status_code == 200, (path, res.status_code, res.text[:300])
    out: dict[str, Any] = {"url": url.split("@")[-1], "seed_seconds": round(seeded, 1)}
    results: dict[str, list[float]] = {name: [] for name in routes}
    for _ in range(args.requests):
        for name, (client, path) in routes.items():
            if name.endswith("cold caches"):
                from penguinctl.web.dashboard import campaigns

                campaigns.CACHE.clear()
            before = len(timed.times)
            client.get(path)
            end = time.monotonic() + 5
            while len(timed.times) == before and time.monotonic() < end:
                time.sleep(0.0005)  # the wrapper records just after the last byte went out
            target, seconds = timed.times[before]
            assert target == path, (target, path)
            results[name].append(seconds)
    for name, values in results.items():
        out[name] = {
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(_pct(values, 0.99) * 1000, 2),
            "n": len(values),
        }
    server.should_exit = True
    time.sleep(0.3)
    sock.close()
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    print(
        f"Dashboard server time, {args.domains:,} domains / {args.sends:,} sends, "
        f"{args.requests} requests per route (round robin)\n",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            work = Path(tmp) / backend
            work.mkdir()
            sqlite = f"sqlite:///{work / 'state.db'}"
            url = sqlite if backend == "sqlite" else _pg_schema(args.pg)
            results.append(run_backend(url, args, work))
            _report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _report(r: dict[str, Any]) -> None:
    print(f"### {r['url'].split(':')[0]} (seeded in {r['seed_seconds']} s)\n")
    print("| route | p50 ms | p99 ms |\n|---|---|---|")
    for name, v in r.items():
        if isinstance(v, dict):
            print(f"| {name} | {v['p50_ms']} | {v['p99_ms']} |")
    page, anchor = r["Domains page (page 1)"], r["JSON, same query (page 1)"]
    camp, canchor = r["Campaign page"], r["JSON, same queries (campaign)"]
    cold = r["Campaign page, cold caches"]
    cold_anchor = r["JSON, same queries (campaign), cold caches"]
    print(
        f"\nDomains page / JSON same query: {page['p50_ms'] / anchor['p50_ms']:.2f}x (p50); "
        f"campaign page / JSON same queries: {camp['p50_ms'] / canchor['p50_ms']:.2f}x (p50), "
        f"cold caches {cold['p50_ms'] / cold_anchor['p50_ms']:.2f}x. The campaign anchor is a "
        "plain JSON route over the same queries; the REST API's stats route computes only the "
        "funnel and A/B part of them.\n",
        flush=True,
    )


def _pg_schema(base: str) -> str:
    import secrets

    import sqlalchemy as sa

    schema = f"bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    raise SystemExit(main())
