"""A thin client for the Cloudflare v4 API: zones by name and the DNS records of a zone.

- Bearer-token auth. The token lives only in the ``Authorization`` header of the underlying
  ``httpx.Client`` (whose repr masks it); it is never part of a message, a log line or a repr,
  and transport exceptions (which carry the request) are never chained onto ours.
- Every non-2xx answer (or ``"success": false``) becomes a typed ``CloudflareError``, a
  ``ProviderError`` naming the method, the path and Cloudflare's ``errors[].code``/``message``:
  401/403 (or an authentication error code) -> ``CloudflareAuthError``; 404 ->
  ``CloudflareNotFound``; 429 -> ``CloudflareRateLimited`` and 5xx -> ``CloudflareServerError``
  once retries are exhausted; connection failures and timeouts -> ``CloudflareConnectionError``.
- 429, 5xx, timeouts and refused connections are retried ``max_retries`` times with exponential
  backoff (``backoff * 2**attempt``, capped), honouring ``Retry-After`` (capped at
  ``MAX_RETRY_AFTER``). Other 4xx answers are never retried.
- A client-side token bucket keeps under Cloudflare's documented global limit of 1200 requests
  per 5 minutes per user (4 requests/s sustained, small bursts); ``rate_limit=None`` disables it.
- ``records`` walks every page (``page``/``per_page``) until ``result_info.total_pages``.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from penguinctl import clock
from penguinctl.errors import ProviderError
from penguinctl.providers.ratelimit import TokenBucket  # also importable from here, as before

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
PER_PAGE = 100  # Cloudflare's default page size for dns_records
RATE_LIMIT = 4.0  # requests per second: 1200 per 5 minutes
BURST = 10
BACKOFF = 0.5  # seconds before the first retry, doubled each time
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0  # never wait longer than this for one Retry-After
MAX_PAGES = 10_000
AUTH_HINT = "check that the api_token of this DnsProvider has Zone.DNS edit permission"
# Error codes Cloudflare uses for a missing, malformed or unknown token (whatever the status).
AUTH_CODES = frozenset({6111, 9106, 9109, 10000})

log = logging.getLogger(__name__)
ErrorItem = tuple[int | None, str]


class CloudflareError(ProviderError):
    """A Cloudflare API call failed. ``errors`` holds Cloudflare's (code, message) pairs."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        errors: Sequence[ErrorItem] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.method = method
        self.path = path
        self.status = status
        self.errors = list(errors)

    @property
    def codes(self) -> list[int]:
        return [code for code, _ in self.errors if code is not None]


class CloudflareAuthError(CloudflareError):
    """401/403: the token is wrong, expired or lacks a permission."""


class CloudflareNotFound(CloudflareError):
    """404, or a zone the token cannot see."""


class CloudflareRateLimited(CloudflareError):
    """429 after every retry."""


class CloudflareServerError(CloudflareError):
    """5xx after every retry."""


class CloudflareConnectionError(CloudflareError):
    """No usable answer: connection refused, timeout, TLS or protocol error."""


def _error_items(body: Any) -> list[ErrorItem]:
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    items: list[ErrorItem] = []
    for err in body["errors"]:
        if isinstance(err, dict):
            code = err.get("code")
            items.append((code if isinstance(code, int) else None, str(err.get("message", ""))))
        else:
            items.append((None, str(err)))
    return items


def _describe(items: Sequence[ErrorItem]) -> str:
    if not items:
        return "no error details in the answer"
    return "; ".join(f"error {c}: {m}" if c is not None else m for c, m in items)


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or clock.now())).total_seconds())


class CloudflareClient:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        rate_limit: float | None = RATE_LIMIT,
        burst: int = BURST,
        per_page: int = PER_PAGE,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        token = (token or "").strip()
        if not token:
            raise ProviderError("no Cloudflare API token was given", hint=AUTH_HINT)
        if not token.isascii() or not token.isprintable() or " " in token:
            # httpx would put the header value into its own exception: check it here instead
            raise ProviderError(
                "the Cloudflare API token contains characters an API token never has",
                hint="check the secret the token reference points at (no quotes, no newline)",
            )
        self.base_url = base_url.rstrip("/")
        self.max_retries = max(0, max_retries)
        self.per_page = per_page
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._bucket = TokenBucket(rate_limit, burst, sleep=sleep) if rate_limit else None
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "penguinctl",
            },
        )

    def __repr__(self) -> str:
        return f"CloudflareClient(base_url={self.base_url!r}, token='******')"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CloudflareClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API ------------------------------------------------------------------------------------
    def zone_id(self, name: str) -> str:
        """The id of the zone called ``name``; ``CloudflareNotFound`` when the token sees none."""
        name = name.strip().rstrip(".").lower()
        body = self._request("GET", "/zones", params={"name": name, "per_page": 50})
        for zone in body.get("result") or []:
            if isinstance(zone, dict) and str(zone.get("name", "")).lower() == name:
                return str(zone["id"])
        raise CloudflareNotFound(
            f"Cloudflare has no zone {name} that this API token can see",
            method="GET",
            path="/zones",
            status=200,
            hint=f"add {name} to the Cloudflare account, or give the token access to that zone "
            "(Zone.DNS edit)",
        )

    def records(self, zone_id: str) -> list[dict[str, Any]]:
        """Every DNS record of the zone, all pages (in the order Cloudflare lists them)."""
        path = f"/zones/{_seg(zone_id)}/dns_records"
        found: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            body = self._request("GET", path, params={"page": page, "per_page": self.per_page})
            result = body.get("result") or []
            for rec in result:
                if isinstance(rec, dict):
                    found.setdefault(str(rec.get("id")), rec)  # a record moved between pages
            info = body.get("result_info") or {}
            total_pages = info.get("total_pages")
            if not isinstance(total_pages, int):
                total, size = info.get("total_count"), info.get("per_page") or self.per_page
                total_pages = -(-total // size) if isinstance(total, int) else None
            if total_pages is None:
                more = len(result) >= (info.get("per_page") or self.per_page)
            else:
                more = page < total_pages
            if not result or not more:
                return list(found.values())
            page += 1
            if page > MAX_PAGES:
                raise CloudflareError(
                    f"Cloudflare API GET {path}: more than {MAX_PAGES} pages of records",
                    method="GET",
                    path=path,
                )

    def record_create(self, zone_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/zones/{_seg(zone_id)}/dns_records"
        return self._request("POST", path, json=body).get("result") or {}

    def record_update(self, zone_id: str, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/zones/{_seg(zone_id)}/dns_records/{_seg(record_id)}"
        return self._request("PUT", path, json=body).get("result") or {}

    def record_delete(self, zone_id: str, record_id: str) -> None:
        self._request("DELETE", f"/zones/{_seg(zone_id)}/dns_records/{_seg(record_id)}")

    # -- transport ------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            if self._bucket is not None:
                self._bucket.acquire()
            try:
                resp = self._http.request(method, path, params=params, json=json)
            except (httpx.TimeoutException, httpx.ConnectError) as exc:
                reason = _transport_reason(exc)
                if attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    log.debug("cloudflare %s %s: %s, retry in %.1f s", method, path, reason, delay)
                    self._sleep(delay)
                    attempt += 1
                    continue
                raise self._connection_error(method, path, reason, attempt) from None
            except httpx.HTTPError as exc:
                raise self._connection_error(method, path, _transport_reason(exc), 0) from None
            status = resp.status_code
            log.debug("cloudflare %s %s -> %d", method, path, status)
            if (status == 429 or status >= 500) and attempt < self.max_retries:
                delay = self._retry_delay(resp, attempt)
                log.debug("cloudflare %s %s: HTTP %d, retry in %.1f s", method, path, status, delay)
                self._sleep(delay)
                attempt += 1
                continue
            body = _json(resp)
            if 200 <= status < 300 and isinstance(body, dict) and body.get("success") is not False:
                return body
            raise self._error(method, path, status, body, attempt)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**attempt))

    def _retry_delay(self, resp: httpx.Response, attempt: int) -> float:
        wait = retry_after(resp.headers.get("Retry-After"))
        if wait is None:
            return self._backoff(attempt)
        return min(MAX_RETRY_AFTER, wait)

    def _connection_error(
        self, method: str, path: str, reason: str, retries: int
    ) -> CloudflareConnectionError:
        after = f" (after {retries + 1} attempts)" if retries else ""
        return CloudflareConnectionError(
            f"Cloudflare API {method} {path} at {self.base_url}: {reason}{after}",
            method=method,
            path=path,
            hint="check network access to the Cloudflare API (proxy, firewall, DNS); "
            "CLOUDFLARE_API_URL overrides the endpoint",
        )

    def _error(
        self, method: str, path: str, status: int, body: Any, retries: int
    ) -> CloudflareError:
        items = _error_items(body)
        message = f"Cloudflare API {method} {path}: HTTP {status}: {_describe(items)}"
        if retries:
            message += f" (after {retries + 1} attempts)"
        fields: dict[str, Any] = {"method": method, "path": path, "status": status}
        if status in (401, 403) or any(code in AUTH_CODES for code, _ in items):
            return CloudflareAuthError(message, errors=items, hint=AUTH_HINT, **fields)
        if status == 404:
            return CloudflareNotFound(message, errors=items, **fields)
        if status == 429:
            return CloudflareRateLimited(
                message,
                errors=items,
                hint="Cloudflare allows 1200 API requests per 5 minutes per user: wait a few "
                "minutes (other tools using the same token count too), then re-run",
                **fields,
            )
        if status >= 500:
            return CloudflareServerError(
                message,
                errors=items,
                hint="Cloudflare failed to answer; check https://www.cloudflarestatus.com and "
                "re-run",
                **fields,
            )
        return CloudflareError(message, errors=items, **fields)


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _transport_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the answer"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return f"transport error ({type(exc).__name__})"
