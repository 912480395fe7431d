"""The endpoint behind every message's ``List-Unsubscribe`` link: a small WSGI application.

The campaign's ``unsubscribe.url`` (``https://track.example/u/{token}``) decides the path; the
application takes the token from its last segment, so it answers under any prefix a reverse
proxy (which terminates TLS) forwards to it.

- ``POST``: unsubscribes. RFC 8058 one-click: mail providers POST ``List-Unsubscribe=One-Click``
  (form-encoded or multipart) with no cookies and follow no redirects; the token alone
  authorises the request, so any POST to a genuine token counts. The lead stops (status
  ``unsubscribed``), the address is suppressed for the campaign's tenant, an audit event is
  recorded (``campaign.unsubscribe``, lead id, no address). Idempotent: 200 again.
- ``GET``: a page with one button that posts to the same URL. GET never unsubscribes: mail
  scanners and link previews fetch links nobody clicked.
- A token whose signature does not verify: 400; one whose campaign or lead no longer exists:
  404. Bodies over 64 KiB: 413. Other methods: 405.

Tokens are HMAC-signed (message.py) with the key in the secrets backend; the access log shows
paths without them. ``serve`` runs it on a threading ``wsgiref`` server: enough for the rate
unsubscribes arrive at, and any WSGI server (gunicorn, uWSGI) can host ``make_app`` instead.
The standard library is used rather than a web framework on purpose: two verbs on one route,
one fixed page.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
ACTOR = "unsubscribe-endpoint"

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

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _page(title: str, text: str, form: str = "") -> bytes:
    return _PAGE.format(title=html.escape(title), text=html.escape(text), form=form).encode()


def make_app(
    engine: Engine, secret: bytes
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application (see the module doc)."""
    from penguinctl.campaigns.message import InvalidToken, verify_unsubscribe_token
    from penguinctl.errors import NotFound

    def respond(start: StartResponse, status: str, body: bytes, ctype: str) -> list[bytes]:
        start(
            status,
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ],
        )
        return [body]

    def page(
        start: StartResponse, status: str, title: str, text: str, form: str = ""
    ) -> list[bytes]:
        return respond(start, status, _page(title, text, form), "text/html; charset=utf-8")

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        token = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
        if method not in ("GET", "POST"):
            start("405 Method Not Allowed", [("Allow", "GET, POST"), ("Content-Length", "0")])
            return [b""]
        try:
            verify_unsubscribe_token(token, secret)
        except InvalidToken:
            return page(
                start, "400 Bad Request", "Invalid link", "This unsubscribe link is not valid."
            )
        if method == "GET":
            return page(
                start,
                "200 OK",
                "Unsubscribe",
                "Press the button to stop receiving these emails.",
                _FORM,
            )
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return page(start, "413 Content Too Large", "Too large", "The request is too large.")
        if length:
            environ["wsgi.input"].read(length)  # the body does not matter (see the module doc)
        try:
            unsubscribe(engine, token, secret)
        except NotFound:
            return page(
                start, "404 Not Found", "Link expired", "This unsubscribe link is no longer valid."
            )
        return page(start, "200 OK", "Unsubscribed", "You will not receive these emails any more.")

    return app


def unsubscribe(engine: Engine, token: str, secret: bytes) -> None:
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


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Access log without the token (it unsubscribes whoever holds it)."""
        text = format % args
        path = self.path.split("?", 1)[0]
        text = text.replace(self.path, path.rsplit("/", 1)[0] + "/<token>")
        log.info("%s %s", self.address_string(), text)


def make_unsubscribe_server(engine: Engine, secret: bytes, host: str, port: int) -> WSGIServer:
    """A threading server for ``make_app`` on ``host:port`` (``serve_forever`` runs it)."""
    return make_server(
        host, port, make_app(engine, secret), server_class=_Server, handler_class=_Handler
    )
