"""The endpoint behind every message's ``List-Unsubscribe`` link.

The campaign's ``unsubscribe.url`` decides the path (``https://track.example/u/{token}``); the
token is its last segment, so the link answers under any prefix a reverse proxy forwards
(``/u/TOKEN`` is routed directly; other paths reach the fallback, mounted after every other
router, which never answers for the app's reserved prefixes).

- ``POST``: unsubscribes (RFC 8058 one-click: any POST to a genuine token counts; the body does
  not matter and is bounded by ``limits.BodyLimit``). The lead stops (``unsubscribed``), the
  address is suppressed for the campaign's tenant, ``campaign.unsubscribe`` is audited (lead id,
  no address). Idempotent.
- ``GET``: a page with one button posting to the same URL; GET never unsubscribes (link
  scanners fetch links nobody clicked).
- A token whose signature does not verify: 400; one whose lead or campaign is gone: 404.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["unsubscribe"])
fallback = APIRouter(tags=["unsubscribe"])

ACTOR = "unsubscribe-endpoint"
RESERVED = ("/api/", "/hooks/", "/dashboard", "/metrics", "/healthz", "/readyz")
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto; padding: 0 1em">
<h1 style="font-size: 1.4em">{title}</h1>
<p>{text}</p>
{form}
</body></html>
"""
_FORM = (
    '<form method="post" action="">'
    '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit" style="font-size: 1em; padding: .5em 1.2em">Unsubscribe</button>'
    "</form>"
)


def _page(status: int, title: str, text: str, form: str = "") -> HTMLResponse:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text), form=form)
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def unsubscribe(engine, token: str, secret: bytes) -> None:
    """Honour a verified token (suppression.apply_unsubscribe), audited, in one transaction."""
    from penguinctl.campaigns.suppression import apply_unsubscribe
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    with session_scope(engine) as session:
        campaign, lead = apply_unsubscribe(session, token, secret)
        record(
            session,
            actor=ACTOR,
            tenant=campaign.tenant,
            action="campaign.unsubscribe",
            resource=f"campaign/{campaign.name}",
            result="ok",
            details={"lead_id": lead.id, "via": "link"},
        )


async def _handle(request: Request, token: str) -> Response:
    from penguinctl.campaigns.message import InvalidToken, verify_unsubscribe_token
    from penguinctl.errors import NotFound, SecretError

    if request.method not in ("GET", "POST"):
        return Response(status_code=405, headers={"Allow": "GET, POST"})
    state = request.app.state.web
    try:
        secret = await run_in_threadpool(state.unsubscribe_secret)
        verify_unsubscribe_token(token, secret)
    except (InvalidToken, SecretError):  # no key yet: no campaign ever signed a link
        return _page(400, "Invalid link", "This unsubscribe link is not valid.")
    if request.method == "GET":
        return _page(200, "Unsubscribe", "Press the button to stop receiving these emails.", _FORM)
    try:
        await run_in_threadpool(unsubscribe, state.db, token, secret)
    except NotFound:
        return _page(404, "Link expired", "This unsubscribe link is no longer valid.")
    return _page(200, "Unsubscribed", "You will not receive these emails any more.")


METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


@router.api_route("/u/{token}", methods=METHODS, include_in_schema=False)
async def by_token(request: Request, token: str) -> Response:
    return await _handle(request, token)


@fallback.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
async def any_prefix(request: Request, path: str) -> Response:
    full = "/" + path
    if full.startswith(RESERVED) or not path.strip("/"):
        return Response(status_code=404)
    return await _handle(request, path.rstrip("/").rsplit("/", 1)[-1])
