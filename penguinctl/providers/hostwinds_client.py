"""A thin client for the Hostwinds Cloud API (``api.php``): the actions penguinctl needs.

Contract (see /work/shared/spec/hostwinds.md):

- Every call is one form-encoded POST to ``base_url`` with ``action=<name>`` and the key in the
  field ``API``. The key lives only in that form body: it is never part of a message, a log line,
  a repr or an exception (transport exceptions, which carry the request, are never chained onto
  ours; text that Hostwinds echoes back is scrubbed of it).
- Hostwinds answers HTTP 200 for failures too, so the body decides: a JSON array of
  ``{result: "error", action, message, ERROR?}`` (or one such object) is a ``HostwindsApiError``
  carrying the API's message (subclasses ``HostwindsInvalidService`` for an unknown service id,
  ``HostwindsLocked`` for a locked instance). Such answers are input or state errors and are
  never retried. HTTP 401/403 (or "Not Authorized!") is ``HostwindsAuthError``, with a hint
  about the key and its IPv4 allow-list.
- Success shapes are normalised: an array of result items, a bare object, ``{"success": {...}}``,
  ``{"success": [...]}`` and ``{"success": true}``; list actions accept a bare array, the wrapped
  form and an object keyed by id. Every ``password`` field (the root password in instance
  objects) is removed from everything returned; ``root_password`` is the one accessor that
  returns it, as a ``SecretValue`` registered for masking (the SSH bootstrap's initial access).
- Transient failures (connection errors, timeouts, HTTP 5xx and 429) are retried with
  exponential backoff: ``backoff`` (1 s) doubled each time, capped at ``max_backoff`` (30 s),
  at most ``max_retries`` (3) retries. ``add_instance`` orders and bills, so it is retried only
  when the request certainly was not processed (connection refused or connect timeout, HTTP 429
  or 503); otherwise the error says ``maybe_processed`` and the caller must look the instance up.
- A token bucket keeps calls under ``rate_limit`` requests per second (2, self-imposed: Hostwinds
  publishes no limit); ``rate_limit=None`` disables it.
- A circuit breaker opens after ``breaker_threshold`` (5) consecutive failed calls (transport
  failures, 5xx/429 once retries are spent, unreadable answers); while open every call fails at
  once with ``HostwindsCircuitOpen``; after ``breaker_reset`` (60 s) one trial call goes through.
  Answers in which Hostwinds itself refused the request (error bodies, 401) prove the API is up
  and reset the count.
- Calls go out over IPv4 by default (``force_ipv4``): the key is IPv4 allow-listed, and a host
  that egresses over IPv6 first would get "Not Authorized!".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from penguinctl.errors import ProviderError
from penguinctl.providers import hostwinds_shapes as shapes
from penguinctl.providers.hostwinds_errors import (
    HostwindsApiError,
    HostwindsAuthError,
    HostwindsCircuitOpen,
    HostwindsConnectionError,
    HostwindsError,
    HostwindsInvalidService,
    HostwindsLocked,
    HostwindsProtocolError,
    HostwindsUnavailable,
)
from penguinctl.providers.ratelimit import CircuitBreaker, TokenBucket

if TYPE_CHECKING:
    from penguinctl.providers.secrets.base import SecretsBackend, SecretValue

DEFAULT_BASE_URL = "https://clients.hostwinds.com/cloud/api.php"
RATE_LIMIT = 2.0  # requests per second, self-imposed (spec 1.5)
BURST = 1
MAX_RETRIES = 3
BACKOFF = 1.0  # seconds before the first retry, doubled each time
MAX_BACKOFF = 30.0
BREAKER_THRESHOLD = 5
BREAKER_RESET = 60.0
TIMEOUT = 60.0  # seconds for an answer (add_instance pays an invoice before answering)
CONNECT_TIMEOUT = 10.0
MASK = "******"

AUTH_HINT = (
    "check HOSTWINDS_API_KEY; Hostwinds also says this when the call comes from an address the "
    "key is not allow-listed for: API keys are allow-listed by IPv4 address in the Hostwinds "
    "portal (Cloud > API keys), so add this host's public IPv4 address there"
)
CONNECTION_HINT = (
    "check network access to the Hostwinds API (proxy, firewall, DNS); HOSTWINDS_API_URL "
    "overrides the endpoint"
)
UNAVAILABLE_HINT = "the Hostwinds API is failing or busy: wait a few minutes, then re-run"
INPUT_HINT = "Hostwinds refused the request (not retried): fix the value it names, then re-run"
# Messages that mean "no such service" (spec 1.5 lists them as client errors, never retried).
INVALID_SERVICE = ("invalid serviceid", "valid serviceid is required", "service id is invalid")
# Actions that create (and bill) something: never resent when the first request may have landed.
NOT_IDEMPOTENT = frozenset({"add_instance"})
# Answers that say the request was not processed at all.
NOT_PROCESSED_STATUS = frozenset({429, 503})

log = logging.getLogger(__name__)


# -- the client ---------------------------------------------------------------------------------
class HostwindsClient:
    """Hostwinds Cloud API calls; thread-safe (one ``httpx.Client``, locked bucket/breaker)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        force_ipv4: bool = True,
        rate_limit: float | None = RATE_LIMIT,
        burst: int = BURST,
        max_retries: int = MAX_RETRIES,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        breaker_threshold: int = BREAKER_THRESHOLD,
        breaker_reset: float = BREAKER_RESET,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        api_key = (api_key or "").strip()
        if not api_key:
            raise ProviderError("no Hostwinds API key was given", hint="set HOSTWINDS_API_KEY")
        if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
            raise ProviderError(
                "the Hostwinds API key contains characters an API key never has",
                hint="check the secret HOSTWINDS_API_KEY points at (no quotes, no newline)",
            )
        self.base_url = base_url or DEFAULT_BASE_URL
        if not self.base_url.startswith(("http://", "https://")):
            raise ProviderError(
                f"the Hostwinds API URL {self.base_url!r} is not an http(s) URL",
                hint="check HOSTWINDS_API_URL",
            )
        self._key = api_key
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._bucket = (
            TokenBucket(rate_limit, burst, clock=clock, sleep=sleep) if rate_limit else None
        )
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset, clock=clock)
        if transport is None and force_ipv4:
            transport = httpx.HTTPTransport(local_address="0.0.0.0")
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "penguinctl"},
        )

    def __repr__(self) -> str:
        return f"HostwindsClient(base_url={self.base_url!r}, api_key={MASK!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HostwindsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- actions ---------------------------------------------------------------------------------
    def add_instance(
        self,
        template: str,
        rid: int,
        location_id: int,
        srvrname: str | None = None,
        billingcycle: str = "monthly",
        *,
        qty: int = 1,
    ) -> list[dict[str, Any]]:
        """Order (and pay for) an instance. Asynchronous: the answer only says the order went
        through (result items, documented without a service id): find the instance afterwards
        by ``srvrname``. Never resent once it may have reached Hostwinds."""
        result = self.call(
            "add_instance",
            template=template,
            rid=rid,
            location_id=location_id,
            srvrname=srvrname,
            billingcycle=billingcycle,
            qty=qty,
        )
        return shapes.dicts(result)

    def get_instance(self, serviceid: int) -> dict[str, Any]:
        """One Server Instance object (without ``password``)."""
        result = self.call("get_instance", serviceid=serviceid)
        if isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict):
            result = result[0]
        if not isinstance(result, dict):
            raise self._shape_error("get_instance", "an instance object")
        return result

    def root_password(self, serviceid: int) -> SecretValue | None:
        """The instance's root password from ``get_instance`` (None when the answer has none),
        registered for masking at once. Never persist it."""
        from penguinctl.masking import registry
        from penguinctl.providers.secrets.base import SecretValue

        result = self._call("get_instance", {"serviceid": serviceid})
        if isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict):
            result = result[0]
        if not isinstance(result, dict):
            raise self._shape_error("get_instance", "an instance object")
        value = result.get("password")
        if not isinstance(value, str) or not value:
            return None
        registry().add(value)
        return SecretValue(value)

    def get_instances(self) -> list[dict[str, Any]]:
        """Every instance of the account (without ``password``)."""
        return shapes.items(self.call("get_instances"), id_field="serviceid")

    def get_instance_ids(
        self,
        *,
        search: str | None = None,
        page: int | None = None,
        limit: int | None = None,
        location_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """``{id, hostname, srvrname, ips, dedicatedip, ip_v6}`` items; ``search`` matches
        loosely (a label's prefix matches too): filter exact matches yourself."""
        result = self.call(
            "get_instance_ids",
            search=search,
            page=None if page is None else str(page),
            limit=None if limit is None else str(limit),
            location_id=location_id,
        )
        return shapes.items(result, id_field="id")

    def get_instance_ips(
        self, serviceid: int, *, location_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The instance's addresses as items with at least ``ip`` (canonical form), in the order
        listed, plus whatever else Hostwinds says of each (the answer's shape is undocumented:
        objects with ``ip``/``ipaddress``/``address``, or plain strings, are understood)."""
        result = self.call("get_instance_ips", serviceid=serviceid, location_id=location_id)
        return shapes.ip_items(result)

    def set_rdns(self, serviceid: int, ip: str, rdns: str) -> str:
        return shapes.message(self.call("set_rdns", serviceid=serviceid, ip=ip, rdns=rdns))

    def edit_instance(self, serviceid: int, srvrname: str) -> str:
        """Change the label (``srvrname``), not the hostname."""
        return shapes.message(self.call("edit_instance", serviceid=serviceid, srvrname=srvrname))

    # -- in-place upgrade (spec 1.3 "Upgrade workflow") ---------------------------------------
    def check_upgrade_order(self, serviceid: int) -> dict[str, Any] | None:
        """The pending upgrade order of the instance, or None when there is none."""
        try:
            got = self.call("check_upgrade_order", serviceid=serviceid)
        except HostwindsApiError:
            return None  # "no pending order" is an error answer
        inner = got.get("success") if isinstance(got, dict) else None
        return inner if isinstance(inner, dict) else None

    def upgrade_instance(self, serviceid: int, rid: int) -> str:
        """Step 1: order (and invoice) the new plan."""
        return shapes.message(self.call("upgrade_instance", serviceid=serviceid, rid=rid))

    def check_upgrade_reboot(self, serviceid: int) -> bool:
        got = self.call("check_upgrade_reboot", serviceid=serviceid)
        return bool(isinstance(got, dict) and got.get("success") is True)

    def upgrade_server(self, serviceid: int) -> str:
        """Step 2, once the order is paid: resize; the instance ends ``RESIZED``."""
        return shapes.message(self.call("upgrade_server", serviceid=serviceid))

    def confirm_upgrade(self, serviceid: int) -> str:
        return shapes.message(self.call("confirm_upgrade", serviceid=serviceid))

    def terminate(self, serviceid: int) -> str:
        """Delete the instance for good (``HostwindsLocked`` when it is locked)."""
        return shapes.message(self.call("terminate", serviceid=serviceid))

    def get_price_list(
        self,
        *,
        serviceid: int | None = None,
        drive_type: str | None = None,
        managed: bool | None = None,
        disk: int | None = None,
    ) -> list[dict[str, Any]]:
        """Price objects (``rid``, ``monthly``, ``quarterly``, ... as strings)."""
        result = self.call(
            "get_price_list", serviceid=serviceid, drive_type=drive_type, managed=managed, disk=disk
        )
        return shapes.items(result, id_field="id")

    # -- transport -------------------------------------------------------------------------------
    def call(self, action: str, **params: Any) -> Any:
        """One action; returns the normalised success value (see the module docstring)."""
        return shapes.scrub(self._call(action, params))

    def _call(self, action: str, params: dict[str, Any]) -> Any:
        """``call`` without removing ``password`` fields."""
        if not self.breaker.allow():
            raise HostwindsCircuitOpen(
                f"Hostwinds API {action}: not sent, calls are suspended for "
                f"{self.breaker.retry_in():.0f} s after {self.breaker.failures} consecutive "
                "failures",
                action=action,
                hint=UNAVAILABLE_HINT,
            )
        try:
            result = self._attempts(action, params)
        except (HostwindsApiError, HostwindsAuthError):
            self.breaker.success()  # Hostwinds answered: it is up
            raise
        except HostwindsError:
            if self.breaker.failure():
                log.warning(
                    "hostwinds: %d consecutive failures, pausing calls for %.0f s",
                    self.breaker.failures,
                    self.breaker.reset_after,
                )
            raise
        except BaseException:
            self.breaker.abandon()  # interrupted or a bug: neither success nor failure
            raise
        self.breaker.success()
        return result

    def _attempts(self, action: str, params: dict[str, Any]) -> Any:
        form = {"action": action, **shapes.form(params), "API": self._key}
        resend_safe = action not in NOT_IDEMPOTENT
        attempt = 0
        while True:
            if self._bucket is not None:
                self._bucket.acquire()
            started = time.monotonic()
            try:
                resp = self._http.post(self.base_url, data=form)
            except httpx.HTTPError as exc:
                processed = _maybe_processed(exc)
                transient = isinstance(exc, httpx.TransportError) and not isinstance(
                    exc, httpx.UnsupportedProtocol
                )
                if transient and (resend_safe or not processed) and attempt < self.max_retries:
                    attempt = self._wait(action, _reason(exc), attempt)
                    continue
                raise HostwindsConnectionError(
                    f"Hostwinds API {action} at {self.base_url}: {_reason(exc)}{_after(attempt)}",
                    action=action,
                    maybe_processed=processed,
                    hint=CONNECTION_HINT,
                ) from None
            status = resp.status_code
            log.debug(
                "hostwinds %s -> HTTP %d in %.0f ms",
                action,
                status,
                (time.monotonic() - started) * 1000,
            )
            if status == 429 or status >= 500:
                processed = status not in NOT_PROCESSED_STATUS
                if (resend_safe or not processed) and attempt < self.max_retries:
                    attempt = self._wait(action, f"HTTP {status}", attempt)
                    continue
                raise HostwindsUnavailable(
                    f"Hostwinds API {action}: HTTP {status}{_after(attempt)}",
                    action=action,
                    status=status,
                    maybe_processed=processed,
                    hint=UNAVAILABLE_HINT,
                )
            return self._parse(action, status, resp)

    def _wait(self, action: str, reason: str, attempt: int) -> int:
        delay = float(min(self.max_backoff, self.backoff * 2**attempt))
        log.debug("hostwinds %s: %s, retry in %.1f s", action, reason, delay)
        self._sleep(delay)
        return attempt + 1

    def _parse(self, action: str, status: int, resp: httpx.Response) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = None
        errors = shapes.error_items(body)
        if status in (401, 403) or any(shapes.is_auth(m) for _, m, _ in errors):
            message = next((m for _, m, _ in errors if m), "Not Authorized!")
            raise HostwindsAuthError(
                f"Hostwinds API {action}: HTTP {status}: {self._clean(message)}",
                action=action,
                status=status,
                api_message=self._clean(message),
                hint=AUTH_HINT,
            )
        if errors:
            raise self._api_error(action, status, errors)
        if isinstance(body, dict) and body.get("success") is False:
            raise HostwindsApiError(
                f"Hostwinds API {action}: the answer says success: false",
                action=action,
                status=status,
                hint=INPUT_HINT,
            )
        if status >= 400 or body is None:
            what = f"HTTP {status}" if status >= 400 else "an answer that is not JSON"
            raise HostwindsProtocolError(
                f"Hostwinds API {action}: {what}",
                action=action,
                status=status,
                maybe_processed=True,
                hint=CONNECTION_HINT,
            )
        return shapes.unwrap(body)

    def _api_error(
        self, action: str, status: int, errors: list[tuple[str, str, str | None]]
    ) -> HostwindsApiError:
        messages = [self._clean(m) for _, m, _ in errors if m] or ["no message in the answer"]
        code = next((c for _, _, c in errors if c), None)
        text = "; ".join(messages)
        message = f"Hostwinds API {action}: {text}" + (f" (ERROR {code})" if code else "")
        low = text.lower()
        cls: type[HostwindsApiError] = HostwindsApiError
        hint = INPUT_HINT
        if any(marker in low for marker in INVALID_SERVICE):
            cls = HostwindsInvalidService
            hint = "the instance does not exist at Hostwinds (wrong id, or terminated)"
        elif "lock" in low:
            cls = HostwindsLocked
            hint = "unlock the instance in the Hostwinds portal (or with toggle_lock), then re-run"
        elif "location id" in low:
            hint = (
                "set hostwinds.location_id of the Server to a location your Hostwinds account "
                "can order in (not retried)"
            )
        elif "hourly" in low:
            hint = "use billingcycle: monthly (hourly billing is not enabled for the account)"
        return cls(message, action=action, status=status, api_message=text, code=code, hint=hint)

    def _clean(self, text: str) -> str:
        """Text from an answer, with the key masked should Hostwinds ever echo it."""
        return str(text).replace(self._key, MASK)

    def _shape_error(self, action: str, expected: str) -> HostwindsProtocolError:
        return HostwindsProtocolError(
            f"Hostwinds API {action}: the answer is not {expected}",
            action=action,
            hint="the Hostwinds API answered in an undocumented shape; re-run with --debug",
        )


# -- transport helpers --------------------------------------------------------------------------
def _maybe_processed(exc: httpx.HTTPError) -> bool:
    """False only when the request certainly never reached Hostwinds."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _after(retries: int) -> str:
    return f" (after {retries + 1} attempts)" if retries else ""


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the answer"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return f"transport error ({type(exc).__name__})"


# -- the client of this installation ------------------------------------------------------------
def client_for(env: Mapping[str, str], secrets: SecretsBackend) -> HostwindsClient:
    """A Hostwinds client: the key from ``HOSTWINDS_API_KEY``, else the secrets backend at
    ``platform/providers/hostwinds`` (field ``api_key``; the platform's account); the endpoint
    from ``HOSTWINDS_API_URL``."""
    from penguinctl import secret_paths

    path = secret_paths.provider("", "hostwinds")
    key = env.get("HOSTWINDS_API_KEY")
    if not key:
        stored = secrets.get(path)
        value = (stored or {}).get("api_key")
        key = value.reveal() if value is not None else None
    if not key:
        raise ProviderError(
            "no Hostwinds API key: HOSTWINDS_API_KEY is not set and the secrets backend has no "
            f"{path} api_key",
            hint=f"export HOSTWINDS_API_KEY, or `penguinctl secrets put {path}` with "
            "api_key=... on stdin",
        )
    return HostwindsClient(key, base_url=env.get("HOSTWINDS_API_URL") or None)
