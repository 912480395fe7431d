"""A client for MailU's REST API (``/api/v1``, release line 2024.06): domains, users, aliases.

Facts it is built on (MailU 2024.06.57 source, /work/shared/spec/mailu.md A.5):

- ``Authorization: Bearer <API_TOKEN>``. Missing header: 401; wrong token: 403, and failed
  attempts rate-limit the caller's IP (429 for everyone from it, valid token or not).
- Writes answer ``{"code", "message"}``; creates answer 200 **without** the object; a duplicate
  is 409, an unknown object 404, a bad name 400. flask-restx payload validation answers 400
  ``{"errors": {...}, "message": "Input payload validation failed"}`` (``null`` is not a
  string: send ``""``). ``GET /domain/<bad-name>`` says 400 in the body with HTTP 200, so a body
  ``code`` other than 200 is an error whatever the status. ``PATCH /domain/<unknown>`` is a 500.
- So every helper here is idempotent the only way this API allows: GET, then POST or PATCH only
  the fields that differ (compared here), DELETE treating 404 as done; a 409 on a create (someone
  created it meanwhile) falls back to the update path.

Transport: ``httpx`` with a connect and a read timeout. Connection failures (refused, connect
timeout), HTTP 5xx and 429 are retried with exponential backoff (``backoff`` doubled, capped at
``max_backoff``, at most ``max_retries``); nothing else is. A read timeout is not retried (a write
may have landed): the error says so and a re-run converges through the GET-first helpers.

Errors are ``MailuError`` (a ``ProviderError``) naming the server, the object and the request,
with MailU's own message. The token lives only in the ``Authorization`` header: it is never in a
message, a repr or an exception (transport exceptions carry the request and are never chained).
Passwords are sent only as ``raw_password`` and never echoed anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from penguinctl.errors import ProviderError

TIMEOUT = 30.0  # seconds for an answer (MailU hashes passwords with bcrypt: slow on purpose)
CONNECT_TIMEOUT = 10.0
MAX_RETRIES = 3
BACKOFF = 0.5
MAX_BACKOFF = 10.0

log = logging.getLogger(__name__)


class MailuError(ProviderError):
    """A MailU API call failed. ``status`` is the HTTP status (or the body's ``code`` when MailU
    answers an error with HTTP 200), ``api_message`` MailU's own text."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        api_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.api_message = api_message


class MailuAuthError(MailuError):
    """401 (no header) or 403 (wrong token)."""


class MailuNotFound(MailuError):
    """404: the object (or its domain, or an alias destination) does not exist."""


class MailuConflict(MailuError):
    """409: a duplicate, or a domain's max_users/max_aliases reached."""


class MailuInvalid(MailuError):
    """400: MailU refused a value."""


class MailuUnavailable(MailuError):
    """HTTP 5xx or 429 after every retry."""


class MailuConnectionError(MailuError):
    """No answer (after every retry for connection failures)."""


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, list) and isinstance(have, list):
        return sorted(want) == sorted(have)
    return want == have


def changed_fields(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``want`` whose live value differs (lists compared as sets of values)."""
    return {k: v for k, v in want.items() if not _same(v, have.get(k))}


class MailuClient:
    """MailU REST API calls for one server; thread-safe (one ``httpx.Client``).

    ``token`` may be a callable: it is then called once, at the first request (a provider can be
    built before the MailU install has generated the token)."""

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        server: str,
        timeout: float = TIMEOUT,
        max_retries: int = MAX_RETRIES,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        transport: httpx.BaseTransport | None = None,
        verify: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ProviderError(
                f"MailU API URL {base_url!r} of server {server} is not an http(s) URL",
                hint="set the server's mail.api_url, e.g. https://mail.example.com/api/v1",
            )
        self.base_url = base_url.rstrip("/")
        self.server = server
        self._token = token
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            transport=transport,
            verify=verify,
            headers={"Accept": "application/json", "User-Agent": "penguinctl"},
        )

    def __repr__(self) -> str:
        return f"MailuClient(server={self.server!r}, base_url={self.base_url!r}, token='******')"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MailuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------
    def _auth(self) -> str:
        if callable(self._token):
            self._token = self._token()
        if isinstance(self._token, str) or self._token is None:
            self._token = [self._token or ""]
        token = (self._token[0] if self._token else "").strip()
        if not token:
            raise ProviderError(f"no MailU API token for server {self.server}")
        return f"Bearer {token}"

    def _next_token(self) -> bool:
        """During a credential rotation the secret holds the current token and the next one:
        after a refusal the next one is tried (once; MailU rate-limits failed tokens)."""
        tokens = self._token if isinstance(self._token, list) else []
        if len(tokens) > 1:
            self._token = tokens[1:]
            return True
        return False

    def call(self, method: str, path: str, payload: Any = None, *, what: str) -> Any:
        """One request; the decoded JSON answer of a success, else a ``MailuError``.
        ``what`` names the object for messages (``user john@example.com``)."""
        url = f"{self.base_url}{path}"
        where = f"MailU API on {self.server}: {what}: {method} {path}"
        attempt = 0
        while True:
            headers = {"Authorization": self._auth()}
            try:
                resp = self._http.request(method, url, json=payload, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.max_retries:
                    attempt = self._wait(where, type(exc).__name__, attempt)
                    continue
                raise MailuConnectionError(
                    f"{where}: cannot connect to {self.base_url} ({_reason(exc)}){_after(attempt)}",
                    hint=f"check that MailU runs on {self.server} and that mail.api_url "
                    f"({self.base_url}) is reachable from here",
                ) from None
            except httpx.TimeoutException:
                raise MailuConnectionError(
                    f"{where}: no answer from {self.base_url} in time; the request may have "
                    "been carried out",
                    hint="re-run: every change is looked up first, so nothing is done twice",
                ) from None
            except httpx.HTTPError as exc:
                raise MailuConnectionError(
                    f"{where}: {_reason(exc)}",
                    hint=f"check mail.api_url ({self.base_url}) of server {self.server}",
                ) from None
            status = resp.status_code
            if status == 429 or status >= 500:
                if attempt < self.max_retries:
                    attempt = self._wait(where, f"HTTP {status}", attempt)
                    continue
                message = _api_message(_json(resp))
                hint = (
                    "MailU rate-limits an IP after failed API logins (AUTH_RATELIMIT_IP): "
                    "check the token in <owner>/servers/<server>/mailu, then wait and re-run"
                    if status == 429
                    else f"MailU's admin container failed: see `docker compose logs admin` on "
                    f"{self.server}, then re-run"
                )
                raise MailuUnavailable(
                    f"{where}: HTTP {status}{_colon(message)}{_after(attempt)}",
                    status=status,
                    api_message=message,
                    hint=hint,
                )
            if status in (401, 403) and self._next_token():
                continue
            return self._parse(where, resp)

    def _wait(self, where: str, reason: str, attempt: int) -> int:
        delay = float(min(self.max_backoff, self.backoff * 2**attempt))
        log.debug("%s: %s, retry in %.1f s", where, reason, delay)
        self._sleep(delay)
        return attempt + 1

    def _parse(self, where: str, resp: httpx.Response) -> Any:
        status = resp.status_code
        body = _json(resp)
        if status < 400 and isinstance(body, dict) and "code" in body and "message" in body:
            code = body.get("code")
            if isinstance(code, int) and code >= 400:  # GET /domain/<bad-name>: 400 in a 200
                status = code
        if status < 400:
            if body is None and resp.content.strip():
                raise MailuError(
                    f"{where}: HTTP {status} with an answer that is not JSON",
                    status=status,
                    hint=f"check that mail.api_url ({self.base_url}) is MailU's /api/v1",
                )
            return body
        message = _api_message(body)
        text = f"{where}: HTTP {status}{_colon(message)}"
        if status in (401, 403):
            raise MailuAuthError(
                text,
                status=status,
                api_message=message,
                hint=f"the api_token in the secret <owner>/servers/{self.server}/mailu must equal "
                f"API_TOKEN in {self.server}'s mailu.env (re-apply the mail stack to render it)",
            )
        if status == 404:
            raise MailuNotFound(text, status=status, api_message=message)
        if status == 409:
            raise MailuConflict(text, status=status, api_message=message)
        if status == 400:
            raise MailuInvalid(
                text,
                status=status,
                api_message=message,
                hint="MailU refused a value (not retried): fix it in the spec and re-run",
            )
        raise MailuError(text, status=status, api_message=message)

    # -- reads ----------------------------------------------------------------------------------
    def domains(self) -> list[dict[str, Any]]:
        return _list(self.call("GET", "/domain", what="list domains"))

    def users(self) -> list[dict[str, Any]]:
        return _list(self.call("GET", "/user", what="list users"))

    def aliases(self) -> list[dict[str, Any]]:
        return _list(self.call("GET", "/alias", what="list aliases"))

    def get_domain(self, name: str) -> dict[str, Any] | None:
        return self._get(f"/domain/{_seg(name)}", f"domain {name}")

    def get_user(self, email: str) -> dict[str, Any] | None:
        return self._get(f"/user/{_seg(email)}", f"user {email}")

    def get_alias(self, email: str) -> dict[str, Any] | None:
        return self._get(f"/alias/{_seg(email)}", f"alias {email}")

    def _get(self, path: str, what: str) -> dict[str, Any] | None:
        try:
            found = self.call("GET", path, what=what)
        except MailuNotFound:
            return None
        if not isinstance(found, dict):
            raise MailuError(f"MailU API on {self.server}: {what}: GET {path}: not an object")
        return found

    # -- idempotent writes ----------------------------------------------------------------------
    def ensure_domain(self, name: str, fields: Mapping[str, Any]) -> str:
        """Make domain ``name`` exist with ``fields``; "created", "updated" or "unchanged"."""
        what = f"domain {name}"
        have = self.get_domain(name)
        if have is None:
            try:
                self.call("POST", "/domain", {"name": name, **fields}, what=what)
                return "created"
            except MailuConflict:
                have = self.get_domain(name)
                if have is None:
                    raise MailuConflict(
                        f"MailU API on {self.server}: {what}: the name is already used by an "
                        "alternative or relay domain of this MailU",
                        status=409,
                        hint="remove that alternative/relay domain in MailU's admin UI",
                    ) from None
        diff = changed_fields(fields, have)
        if not diff:
            return "unchanged"
        self.call("PATCH", f"/domain/{_seg(name)}", diff, what=what)
        return "updated"

    def ensure_user(
        self,
        email: str,
        fields: Mapping[str, Any],
        *,
        password: Callable[[], str],
        set_password: bool = False,
    ) -> str:
        """Make user ``email`` exist with ``fields``. A new user gets ``password()``; an existing
        one gets it too when ``set_password`` (MailU cannot tell whether it already matches)."""
        what = f"user {email}"
        have = self.get_user(email)
        if have is None:
            try:
                payload = {"email": email, "raw_password": password(), **fields}
                self.call("POST", "/user", payload, what=what)
                return "created"
            except MailuConflict as exc:
                have = self.get_user(email)
                if have is None:  # "Too many users for domain"
                    raise exc from None
                set_password = True  # created by someone else meanwhile: make ours work
        diff = changed_fields(fields, have)
        if set_password:
            diff["raw_password"] = password()
        if not diff:
            return "unchanged"
        self.call("PATCH", f"/user/{_seg(email)}", diff, what=what)
        return "updated"

    def set_password(self, email: str, password: str) -> None:
        """Change a user's password (``MailuNotFound`` when the user does not exist)."""
        self.call("PATCH", f"/user/{_seg(email)}", {"raw_password": password}, what=f"user {email}")

    def ensure_alias(
        self, email: str, destinations: list[str], fields: Mapping[str, Any] | None = None
    ) -> str:
        what = f"alias {email}"
        want = {"destination": sorted(destinations), **(fields or {})}
        have = self.get_alias(email)
        if have is None:
            try:
                self.call("POST", "/alias", {"email": email, **want}, what=what)
                return "created"
            except MailuConflict as exc:
                have = self.get_alias(email)
                if have is None:
                    raise exc from None
        have = {**have, "destination": [d.lower() for d in have.get("destination") or []]}
        diff = changed_fields(want, have)
        if not diff:
            return "unchanged"
        self.call("PATCH", f"/alias/{_seg(email)}", diff, what=what)
        return "updated"

    def delete_domain(self, name: str) -> bool:
        """Delete the domain (with its users and aliases); False when it was not there."""
        return self._delete(f"/domain/{_seg(name)}", f"domain {name}")

    def delete_user(self, email: str) -> bool:
        return self._delete(f"/user/{_seg(email)}", f"user {email}")

    def delete_alias(self, email: str) -> bool:
        return self._delete(f"/alias/{_seg(email)}", f"alias {email}")

    def _delete(self, path: str, what: str) -> bool:
        try:
            self.call("DELETE", path, what=what)
        except MailuNotFound:
            return False
        return True


def _seg(value: str) -> str:
    return quote(value, safe="@")


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _api_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    message = str(body.get("message") or "").strip()
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        detail = "; ".join(f"{k}: {v}" if k else str(v) for k, v in sorted(errors.items()))
        message = f"{message} ({detail})" if message else detail
    return message[:500]


def _list(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise MailuError("MailU API answered a list request with something that is not a list")
    return [item for item in body if isinstance(item, dict)]


def _colon(message: str) -> str:
    return f": {message}" if message else ""


def _after(attempt: int) -> str:
    return f" (after {attempt} retries)" if attempt else ""


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "MailuAuthError",
    "MailuClient",
    "MailuConflict",
    "MailuConnectionError",
    "MailuError",
    "MailuInvalid",
    "MailuNotFound",
    "MailuUnavailable",
    "changed_fields",
]
