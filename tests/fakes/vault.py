"""A local HTTP double of the HashiCorp Vault API that hvac uses, on 127.0.0.1.

Served by ``http.server.ThreadingHTTPServer`` on an ephemeral port under ``/v1``:

- ``GET|HEAD sys/health`` (200, or 503 with ``sealed: true`` when ``sealed`` is set; a sealed
  Vault answers every other request with 503 ``Vault is sealed``);
- ``GET auth/token/lookup-self``, ``POST auth/token/renew-self``; ``POST auth/approle/login``
  (``add_approle``);
- KV v2 at each mount in ``mounts`` (``secret`` by default): ``GET|POST|PUT|DELETE
  {mount}/data/{path}`` (``options.cas``: 0 = only if absent, N = only if the current version
  is N, else 400 ``check-and-set parameter did not match the current version``; ``cas_required``
  honoured), ``GET|POST|DELETE {mount}/metadata/{path}``, ``LIST {mount}/metadata/{path}`` and
  ``GET ...?list=true``, ``POST {mount}/delete|undelete|destroy/{path}``, ``GET|POST
  {mount}/config``; ``max_versions`` pruning.

Shapes follow the Vault API: every 200 answer is the response envelope (``request_id``,
``lease_id``, ``renewable``, ``lease_duration``, ``data``, ``wrap_info``, ``warnings``,
``auth``); errors are ``{"errors": [...]}``; a missing secret is 404 ``{"errors": []}``; a
soft-deleted or destroyed version is 404 *with* ``data: {data: null, metadata: {...}}``.

Authorisation: every route except health and login needs ``X-Vault-Token``. A token carries a
policy: None (root, everything) or a list of ``(path pattern, capabilities)``; patterns are
Vault's (``*`` only at the end = prefix glob, ``+`` = one segment). Like Vault, every non-root
token also gets the built-in ``default`` policy (lookup-self, renew-self, revoke-self) unless
created without it. Missing capability, unknown or expired token -> 403 ``permission denied``.
Capabilities: GET read, LIST list, POST/PUT on data create (new key) or update, DELETE delete,
POST on delete/undelete/destroy/metadata/config and on renew-self update.

Token lifetimes follow Vault's rules: a token has a TTL (0: never expires, like root) counted on
the double's ``clock`` (seconds; ``time.time`` unless a test replaces it), and a max TTL from its
creation (0: the system max, 768h). A token past its TTL is revoked. ``renew-self`` (renewable
tokens only, else 400 ``lease is not renewable``) resets the TTL to the requested ``increment``
or the token's original TTL, capped at what remains of the max TTL, with Vault's warning ``TTL
of "..." exceeded the effective max_ttl of "..."; TTL value is capped accordingly``. AppRole
logins issue renewable tokens with the role's ``token_ttl``/``token_max_ttl``.

Knobs: ``sealed``, ``clock``, ``add_token``, ``add_approle``, ``revoke``, ``requests`` (method,
path, query, headers without the token), ``dump`` (the stored fields of the latest version, for
assertions).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.loopback import LoopbackHttpDouble

Policy = list[tuple[str, set[str]]] | None
SYSTEM_MAX_TTL = 768 * 3600  # Vault's default max lease TTL
# Vault's built-in "default" policy, as far as the token's own lifecycle goes
DEFAULT_POLICY: list[tuple[str, set[str]]] = [
    ("auth/token/lookup-self", {"read"}),
    ("auth/token/renew-self", {"update"}),
    ("auth/token/revoke-self", {"update"}),
]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _go_duration(seconds: int) -> str:
    """Go's time.Duration text, as Vault prints it in warnings: 1h0m0s, 5m0s, 42s."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s" if m else f"{s}s"


def _seconds(value: Any) -> int:
    """A duration parameter: an integer number of seconds or Go-style text (30s, 5m, 1h)."""
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    total, number = 0, ""
    for ch in text:
        if ch.isdigit():
            number += ch
        elif ch in "smhd" and number:
            total += int(number) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[ch]
            number = ""
        else:
            raise VaultHttpError(400, [f"time: invalid duration {text!r}"])
    if number:
        raise VaultHttpError(400, [f"time: missing unit in duration {text!r}"])
    return total


@dataclass
class Token:
    policy: Policy
    created: float
    ttl: int = 0  # seconds; 0 = no expiry
    max_ttl: int = 0  # seconds from creation; 0 = the system max
    renewable: bool = False
    default_policy: bool = True
    expires: float | None = None  # absolute, on the double's clock
    accessor: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    renewals: int = 0

    def policies(self) -> list[str]:
        if self.policy is None:
            return ["root"]
        return (["default"] if self.default_policy else []) + ["penguinctl"]


class VaultHttpError(Exception):
    def __init__(self, status: int, errors: list[str] | None = None, body: Any = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body if body is not None else {"errors": errors or []}


@dataclass
class Version:
    data: dict[str, Any] | None
    created_time: str
    deletion_time: str = ""
    destroyed: bool = False

    def meta(self, number: int, custom: dict[str, str] | None) -> dict[str, Any]:
        return {
            "version": number,
            "created_time": self.created_time,
            "deletion_time": self.deletion_time,
            "destroyed": self.destroyed,
            "custom_metadata": custom or None,
        }


@dataclass
class Entry:
    created_time: str
    updated_time: str
    versions: dict[int, Version] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"
    custom_metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str  # after /v1/
    query: dict[str, str]
    namespace: str | None
    status: int = 0


def _match(pattern: str, path: str) -> bool:
    glob = pattern.endswith("*")
    pat = pattern[:-1] if glob else pattern
    pparts = pat.split("/")
    parts = path.split("/")
    if not glob and len(pparts) != len(parts):
        return False
    if glob and len(parts) < len(pparts):
        return False
    for i, pp in enumerate(pparts):
        last = i == len(pparts) - 1
        if pp == "+":
            continue
        if last and glob:
            return parts[i].startswith(pp)
        if pp != parts[i]:
            return False
    return True


class FakeVault(LoopbackHttpDouble):
    def __init__(
        self,
        *,
        token: str = "root-token",
        mounts: tuple[str, ...] = ("secret",),
        cas_required: bool = False,
    ) -> None:
        self.token = token
        self.sealed = False
        self.clock: Callable[[], float] = time.time
        self.tokens: dict[str, Token] = {token: Token(None, self.clock())}
        self.approles: dict[str, tuple[str, Policy, int, int]] = {}
        self.mounts: dict[str, dict[str, Entry]] = {m: {} for m in mounts}
        self.config: dict[str, dict[str, Any]] = {
            m: {"max_versions": 0, "cas_required": cas_required, "delete_version_after": "0s"}
            for m in mounts
        }
        self.requests: list[Seen] = []
        self._lock = threading.RLock()
        self._serve(_Handler)

    # -- test helpers -------------------------------------------------------------------------
    def add_token(
        self,
        token: str,
        policy: Policy,
        *,
        ttl: int = 0,
        max_ttl: int = 0,
        renewable: bool | None = None,
        default_policy: bool = True,
    ) -> None:
        """A token with ``policy`` (None: root). ``ttl`` 0 never expires; ``renewable`` defaults
        to whether it has a TTL."""
        with self._lock:
            now = self.clock()
            self.tokens[token] = Token(
                policy,
                now,
                ttl=ttl,
                max_ttl=max_ttl,
                renewable=bool(ttl) if renewable is None else renewable,
                default_policy=default_policy,
                expires=now + ttl if ttl else None,
            )

    def add_approle(
        self,
        role_id: str,
        secret_id: str,
        policy: Policy,
        *,
        token_ttl: int = 3600,
        token_max_ttl: int = 0,
    ) -> None:
        with self._lock:
            self.approles[role_id] = (secret_id, policy, token_ttl, token_max_ttl)

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)

    def live_token(self, token: str) -> Token | None:
        """The token if it exists and has not expired (an expired one is revoked)."""
        with self._lock:
            info = self.tokens.get(token)
            if info is not None and info.expires is not None and info.expires <= self.clock():
                del self.tokens[token]
                return None
            return info

    def dump(self, path: str, mount: str = "secret") -> dict[str, Any] | None:
        """Fields of the latest live version at ``path`` (inside the mount), or None."""
        with self._lock:
            entry = self.mounts[mount].get(path.strip("/"))
            if entry is None or not entry.current_version:
                return None
            version = entry.versions.get(entry.current_version)
            if version is None or version.data is None or version.deletion_time:
                return None
            return dict(version.data)

    def paths(self, mount: str = "secret") -> list[str]:
        with self._lock:
            return sorted(p for p, e in self.mounts[mount].items() if e.versions)

    # -- request handling -----------------------------------------------------------------------
    def _allowed(self, token: str | None, path: str, capability: str) -> None:
        info = self.live_token(token) if token else None
        if info is None:
            raise VaultHttpError(403, ["permission denied"])
        if info.policy is None:
            return
        rules = info.policy + (DEFAULT_POLICY if info.default_policy else [])
        for pattern, caps in rules:
            if _match(pattern, path) and capability in caps:
                return
        raise VaultHttpError(403, ["1 error occurred:\n\t* permission denied\n\n"])

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, token: str | None
    ) -> tuple[int, Any]:
        if path == "sys/health":
            return self._health()
        if self.sealed:
            raise VaultHttpError(503, ["Vault is sealed"])
        if path.startswith("auth/") and path.endswith("/login") and method in ("POST", "PUT"):
            return self._login(path, body or {})
        if path == "auth/token/lookup-self" and method in ("GET", "POST"):
            self._allowed(token, path, "read")
            return 200, self._envelope(self._token_info(token or ""))
        if path == "auth/token/renew-self" and method in ("POST", "PUT"):
            self._allowed(token, path, "update")
            return self._renew_self(token or "", body or {})
        parts = path.split("/", 2)
        mount = parts[0]
        if mount not in self.mounts:
            self._allowed(token, path, "read")
            raise VaultHttpError(404, [f"no handler for route '{path}'. route entry not found."])
        kind = parts[1] if len(parts) > 1 else ""
        rel = unquote(parts[2]).strip("/") if len(parts) > 2 else ""
        if method == "GET" and query.get("list") == "true":
            method = "LIST"
        if kind == "config":
            return self._config(method, mount, path, body or {}, token)
        if kind == "data" and rel:
            return self._data(method, mount, rel, path, query, body or {}, token)
        if kind == "metadata":
            return self._metadata(method, mount, rel, path, body or {}, token)
        if kind in ("delete", "undelete", "destroy") and rel and method in ("POST", "PUT"):
            self._allowed(token, path, "update")
            return self._versions_op(kind, mount, rel, body or {})
        raise VaultHttpError(405, ["unsupported operation"])

    def _envelope(self, data: Any, auth: Any = None) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": auth,
            "mount_type": "kv",
        }

    def _health(self) -> tuple[int, Any]:
        body = {
            "initialized": True,
            "sealed": self.sealed,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(self.clock()),
            "version": "1.15.0",
            "cluster_name": "vault-cluster-fake",
            "cluster_id": "00000000-0000-0000-0000-000000000000",
        }
        return (503 if self.sealed else 200), body

    def _token_info(self, token: str) -> dict[str, Any]:
        info = self.tokens[token]
        now = self.clock()
        remaining = max(0, int(info.expires - now)) if info.expires is not None else 0
        return {
            "accessor": info.accessor,
            "creation_time": int(info.created),
            "creation_ttl": info.ttl,
            "display_name": "token" if info.policy is None else "approle",
            "entity_id": "",
            "expire_time": _rfc3339(info.expires) if info.expires is not None else None,
            "explicit_max_ttl": 0,
            "id": token,
            "issue_time": _rfc3339(info.created),
            "last_renewal_time": int(now) if info.renewals else None,
            "meta": None,
            "num_uses": 0,
            "orphan": True,
            "path": "auth/token/create",
            "policies": info.policies(),
            "renewable": info.renewable,
            "ttl": remaining,
            "type": "service",
        }

    def _auth(self, token: str, info: Token, lease: int) -> dict[str, Any]:
        return {
            "client_token": token,
            "accessor": info.accessor,
            "policies": info.policies(),
            "token_policies": info.policies(),
            "metadata": {"role_name": "penguinctl"} if info.policy is not None else None,
            "lease_duration": lease,
            "renewable": info.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
            "mfa_requirement": None,
            "num_uses": 0,
        }

    def _renew_self(self, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        info = self.tokens[token]
        if not info.renewable or info.expires is None:
            raise VaultHttpError(400, ["lease is not renewable"])
        now = self.clock()
        wanted = _seconds(body["increment"]) if body.get("increment") else info.ttl
        left = int(info.created + (info.max_ttl or SYSTEM_MAX_TTL) - now)
        lease = max(0, min(wanted, left))
        warnings = None
        if wanted > left:
            warnings = [
                f'TTL of "{_go_duration(wanted)}" exceeded the effective max_ttl of '
                f'"{_go_duration(left)}"; TTL value is capped accordingly'
            ]
        info.expires = now + lease
        info.renewals += 1
        envelope = self._envelope(None, self._auth(token, info, lease))
        envelope["warnings"] = warnings
        return 200, envelope

    def _login(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path != "auth/approle/login":
            raise VaultHttpError(404, [f"no handler for route '{path}'. route entry not found."])
        role = self.approles.get(str(body.get("role_id") or ""))
        if role is None:
            raise VaultHttpError(400, ["invalid role ID"])
        secret_id, policy, ttl, max_ttl = role
        if body.get("secret_id") != secret_id:
            raise VaultHttpError(400, ["invalid role or secret ID"])
        token = "hvs." + uuid.uuid4().hex
        now = self.clock()
        ttl = ttl or SYSTEM_MAX_TTL  # 0: the mount's default TTL
        info = self.tokens[token] = Token(
            policy, now, ttl=ttl, max_ttl=max_ttl, renewable=True, expires=now + ttl
        )
        return 200, self._envelope(None, self._auth(token, info, ttl))

    def _config(
        self, method: str, mount: str, path: str, body: dict[str, Any], token: str | None
    ) -> tuple[int, Any]:
        if method == "GET":
            self._allowed(token, path, "read")
            return 200, self._envelope(dict(self.config[mount]))
        if method in ("POST", "PUT"):
            self._allowed(token, path, "update")
            for key in ("max_versions", "cas_required", "delete_version_after"):
                if key in body:
                    self.config[mount][key] = body[key]
            return 204, None
        raise VaultHttpError(405, ["unsupported operation"])

    def _max_versions(self, mount: str, entry: Entry) -> int:
        return entry.max_versions or int(self.config[mount]["max_versions"]) or 10

    def _data(
        self,
        method: str,
        mount: str,
        rel: str,
        path: str,
        query: dict[str, str],
        body: dict[str, Any],
        token: str | None,
    ) -> tuple[int, Any]:
        store = self.mounts[mount]
        entry = store.get(rel)
        if method == "GET":
            self._allowed(token, path, "read")
            if entry is None or not entry.current_version:
                raise VaultHttpError(404, [])
            number = int(query.get("version") or 0) or entry.current_version
            version = entry.versions.get(number)
            if version is None:
                raise VaultHttpError(404, [])
            payload = {
                "data": None
                if (version.deletion_time or version.destroyed)
                else dict(version.data or {}),
                "metadata": version.meta(number, entry.custom_metadata),
            }
            if payload["data"] is None:
                raise VaultHttpError(404, body=self._envelope(payload))
            return 200, self._envelope(payload)
        if method in ("POST", "PUT"):
            exists = entry is not None and bool(entry.current_version)
            self._allowed(token, path, "update" if exists else "create")
            data = body.get("data")
            if not isinstance(data, dict):
                raise VaultHttpError(400, ["no data provided"])
            options = body.get("options") or {}
            current = entry.current_version if entry else 0
            cas_required = bool(self.config[mount]["cas_required"]) or bool(
                entry and entry.cas_required
            )
            if "cas" in options:
                if int(options["cas"]) != current:
                    raise VaultHttpError(
                        400, ["check-and-set parameter did not match the current version"]
                    )
            elif cas_required:
                raise VaultHttpError(400, ["check-and-set parameter required for this call"])
            now = _now()
            if entry is None:
                entry = store[rel] = Entry(created_time=now, updated_time=now)
            number = entry.current_version + 1
            entry.versions[number] = Version(dict(data), now)
            entry.current_version = number
            entry.updated_time = now
            if not entry.oldest_version:
                entry.oldest_version = number
            keep = self._max_versions(mount, entry)
            for old in sorted(entry.versions):
                if len(entry.versions) <= keep:
                    break
                del entry.versions[old]
            entry.oldest_version = min(entry.versions)
            return 200, self._envelope(entry.versions[number].meta(number, entry.custom_metadata))
        if method == "DELETE":
            self._allowed(token, path, "delete")
            if entry is not None and entry.current_version in entry.versions:
                version = entry.versions[entry.current_version]
                if not version.deletion_time:
                    version.deletion_time = _now()
            return 204, None
        raise VaultHttpError(405, ["unsupported operation"])

    def _metadata(
        self, method: str, mount: str, rel: str, path: str, body: dict[str, Any], token: str | None
    ) -> tuple[int, Any]:
        store = self.mounts[mount]
        if method == "LIST":
            self._allowed(token, path.rstrip("/") + "/", "list")  # Vault lists "folder/"
            folder = rel + "/" if rel else ""
            keys: set[str] = set()
            for key in store:
                if key.startswith(folder):
                    head, sep, _ = key[len(folder) :].partition("/")
                    keys.add(head + sep)
            if not keys:
                raise VaultHttpError(404, [])
            return 200, self._envelope({"keys": sorted(keys)})
        if not rel:
            raise VaultHttpError(405, ["unsupported operation"])
        entry = store.get(rel)
        if method == "GET":
            self._allowed(token, path, "read")
            if entry is None:
                raise VaultHttpError(404, [])
            return 200, self._envelope(
                {
                    "cas_required": entry.cas_required,
                    "created_time": entry.created_time,
                    "current_version": entry.current_version,
                    "custom_metadata": entry.custom_metadata or None,
                    "delete_version_after": entry.delete_version_after,
                    "max_versions": entry.max_versions,
                    "oldest_version": entry.oldest_version,
                    "updated_time": entry.updated_time,
                    "versions": {
                        str(n): {
                            "created_time": v.created_time,
                            "deletion_time": v.deletion_time,
                            "destroyed": v.destroyed,
                        }
                        for n, v in sorted(entry.versions.items())
                    },
                }
            )
        if method in ("POST", "PUT"):
            self._allowed(token, path, "update" if entry else "create")
            if entry is None:
                now = _now()
                entry = store[rel] = Entry(created_time=now, updated_time=now)
            if "max_versions" in body:
                entry.max_versions = int(body["max_versions"])
            if "cas_required" in body:
                entry.cas_required = bool(body["cas_required"])
            if "delete_version_after" in body:
                entry.delete_version_after = str(body["delete_version_after"])
            if "custom_metadata" in body:
                entry.custom_metadata = {
                    str(k): str(v) for k, v in (body["custom_metadata"] or {}).items()
                }
            entry.updated_time = _now()
            return 204, None
        if method == "DELETE":
            self._allowed(token, path, "delete")
            store.pop(rel, None)
            return 204, None
        raise VaultHttpError(405, ["unsupported operation"])

    def _versions_op(
        self, kind: str, mount: str, rel: str, body: dict[str, Any]
    ) -> tuple[int, Any]:
        numbers = body.get("versions")
        if not isinstance(numbers, list) or not numbers:
            raise VaultHttpError(400, ["no version number provided"])
        entry = self.mounts[mount].get(rel)
        if entry is None:
            return 204, None
        for n in numbers:
            version = entry.versions.get(int(n))
            if version is None:
                continue
            if kind == "delete" and not version.deletion_time:
                version.deletion_time = _now()
            elif kind == "undelete" and not version.destroyed:
                version.deletion_time = ""
            elif kind == "destroy":
                version.destroyed = True
                version.data = None
        return 204, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any) -> None:
        raw = b"" if payload is None or status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(raw)

    def _dispatch(self) -> None:
        fake: FakeVault = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not url.path.startswith("/v1/"):
            return self._send(404, {"errors": []})
        path = url.path[len("/v1/") :].strip("/")
        while "//" in path:
            path = path.replace("//", "/")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        seen = Seen(self.command, path, query, self.headers.get("X-Vault-Namespace"))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            seen.status = 400
            fake.requests.append(seen)
            return self._send(400, {"errors": ["failed to parse JSON input"]})
        token = self.headers.get("X-Vault-Token") or None
        with fake._lock:
            fake.requests.append(seen)
            try:
                status, payload = fake.handle(self.command, path, query, body, token)
            except VaultHttpError as exc:
                status, payload = exc.status, exc.body
            seen.status = status
        self._send(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_HEAD = _dispatch
