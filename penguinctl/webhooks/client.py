"""Outbound webhook requests, safe by construction (httpx over a guarded connection backend).

- **No SSRF into the operator's network.** A URL's host is resolved and every address is
  checked: loopback, private (RFC 1918, ULA), link-local (cloud metadata at 169.254.169.254),
  shared (100.64/10), multicast, reserved and unspecified addresses are refused unless the
  endpoint was added with ``--allow-private``. The check runs when the endpoint is added and
  again on every new connection, where the connection goes to the address just checked (the
  guarded backend resolves and connects itself), so a DNS answer that changes in between (DNS
  rebinding) cannot slip through. TLS still verifies the certificate against the URL's host
  name (SNI) because httpcore starts TLS on that stream with the origin's name.
- **Bounded cost.** Connect timeout 5 s, 15 s per read and for the whole request; at most
  ``MAX_RESPONSE`` bytes of the answer are read (the rest is dropped with the connection).
- **No redirects** (a 3xx is a failed attempt, per Standard Webhooks), no proxy from the
  environment, no credentials in URLs.

httpx has no public hook for its network backend (encode/httpx discussion #3180), so
``GuardedTransport`` replaces the connection pool of an ``httpx.HTTPTransport`` with one built
on ``GuardedBackend``; ``tests/test_webhooks_ssrf.py`` fails if that stops taking effect.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
MAX_RESPONSE = 64 * 1024
EXCERPT = 500
Resolver = Callable[[str, int], list[str]]


class Refused(Exception):
    """The URL or an address it resolves to may not be called."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"{host} does not resolve: {exc.strerror or exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_address(address: str, *, allow_private: bool) -> None:
    """Raise ``Refused`` for an address a webhook may not reach without ``allow_private``."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        raise Refused(f"{address} is not a unicast address")
    if not allow_private and not ip.is_global:
        raise Refused(f"{address} is a loopback, private, link-local or reserved address")


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> list[str]:
    """Check a webhook URL (scheme, no credentials, every address it resolves to); returns the
    addresses. Raises ``Refused`` with the reason."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise Refused(f"{url[:200]!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused(f"{url[:200]!r}: only http and https URLs can receive webhooks")
    if parsed.userinfo:
        raise Refused("credentials in a webhook URL would be stored in the state store")
    if not parsed.host:
        raise Refused(f"{url[:200]!r} has no host")
    if len(url) > 2000:
        raise Refused("the URL is longer than 2000 characters")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolver(parsed.host, port)
    if not addresses:
        raise Refused(f"{parsed.host} resolves to no address")
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself, refuses it if any address is not allowed, and connects to the
    addresses it checked (never resolving again)."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.resolver(host, port)
            for address in addresses:
                check_address(address, allow_private=self.allow_private)
        except Refused as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host}: no address to connect to")

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        raise httpcore.ConnectError("webhooks never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """An ``httpx.HTTPTransport`` whose connections go through ``GuardedBackend``."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = resolve,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 32,
    ) -> None:
        super().__init__(trust_env=False)
        context = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
        )


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer (refused, unreachable, timeout)
    latency_ms: int
    body: bytes = b""
    error: str | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def transport_error(self) -> bool:
        return self.status is None


class WebhookClient:
    """Two httpx clients (private addresses allowed or not) sharing the limits above."""

    def __init__(
        self,
        *,
        resolver: Resolver = resolve,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 32,
        timeout: float = READ_TIMEOUT,
    ) -> None:
        self.timeout = timeout
        self._clients = {
            allow: httpx.Client(
                transport=GuardedTransport(
                    allow_private=allow,
                    resolver=resolver,
                    verify=verify,
                    max_connections=max_connections,
                ),
                timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
                follow_redirects=False,
                trust_env=False,
            )
            for allow in (False, True)
        }

    def post(
        self, url: str, body: bytes, headers: dict[str, str], *, allow_private: bool
    ) -> Answer:
        started = time.perf_counter()
        deadline = started + self.timeout + CONNECT_TIMEOUT

        def ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            with self._clients[allow_private].stream(
                "POST", url, content=body, headers=headers
            ) as resp:
                chunks, size = [], 0
                for chunk in resp.iter_raw():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= MAX_RESPONSE or time.perf_counter() > deadline:
                        break
                return Answer(
                    resp.status_code,
                    ms(),
                    b"".join(chunks)[:MAX_RESPONSE],
                    retry_after=_retry_after(resp.headers.get("retry-after")),
                )
        except httpx.TimeoutException as exc:
            return Answer(None, ms(), error=f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Answer(None, ms(), error=f"{type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, min(float(value.strip()), 6 * 3600.0))
    except ValueError:
        return None  # an HTTP date: ignored (the schedule applies)
