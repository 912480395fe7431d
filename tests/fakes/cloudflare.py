"""A local HTTP double of the Cloudflare v4 API endpoints penguinctl uses, on 127.0.0.1.

Served by ``http.server.ThreadingHTTPServer`` on an ephemeral port under ``/client/v4``:
``GET /zones?name=``, ``GET|POST /zones/{id}/dns_records`` (paginated: ``page``/``per_page``,
``result_info`` = page, per_page, count, total_count, total_pages), ``GET|PUT|PATCH|DELETE
/zones/{id}/dns_records/{record id}``. Objects follow the documented shapes: a dns_record has
``id``, ``zone_id``, ``zone_name``, ``name`` (FQDN), ``type``, ``content``, ``ttl``, ``proxied``,
``proxiable``, ``priority`` (MX), ``locked``, ``meta``, ``comment``, ``tags`` and timestamps.
Every answer is ``{"success", "errors": [{"code", "message"}], "messages", "result"}``.

What it checks like Cloudflare: the bearer token (else 403, code 9109), record types and
content (A/AAAA addresses, MX priority, TXT quoted strings <= 255 octets, content <= 2048
characters), TTL (1 or 60-86400), identical duplicates (81058) and CNAME exclusivity (81053).
A proxied record gets TTL 1 (automatic); an unquoted TXT content over 255 octets is split into
quoted strings; MX/CNAME targets lose a trailing dot. Error codes other than 9109 and 81058 are
illustrative.

Knobs: ``max_per_page`` (5 by default, so lists page), ``inject(...)`` (answer the next matching
requests with a status, headers and body, or delay them), ``requests`` (the log of what was
asked), ``add_record``/``edit_record`` (out-of-band changes).
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.loopback import LoopbackHttpDouble

PREFIX = "/client/v4"
TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Seen:
    method: str
    path: str  # without PREFIX
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Injection:
    status: int | None  # None: answer normally (after ``delay``)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    delay: float = 0.0
    process_first: bool = False  # with a delay: do the work, then answer late


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _envelope(result: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"success": not errors, "errors": errors or [], "messages": [], "result": result}


class FakeCloudflare(LoopbackHttpDouble):
    url_path = PREFIX

    def __init__(self, *, token: str, zones: tuple[str, ...] = (), max_per_page: int = 5) -> None:
        self.token = token
        self.max_per_page = max_per_page
        self.zones: dict[str, str] = {}  # zone id -> name
        self.records: dict[str, dict[str, dict[str, Any]]] = {}  # zone id -> id -> record
        self.requests: list[Seen] = []
        self.injections: list[Injection] = []
        self._lock = threading.RLock()
        for zone in zones:
            self.add_zone(zone)
        self._serve(_Handler)

    # -- test helpers ---------------------------------------------------------------------------
    def add_zone(self, name: str) -> str:
        zone_id = uuid.uuid4().hex
        with self._lock:
            self.zones[zone_id] = name
            self.records[zone_id] = {}
        return zone_id

    def zone_id(self, name: str) -> str:
        return next(zid for zid, zname in self.zones.items() if zname == name)

    def dump(self, zone: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.records[self.zone_id(zone)].values()]

    def add_record(self, zone: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._create(self.zone_id(zone), body)

    def edit_record(self, zone: str, record_id: str, **fields: Any) -> None:
        with self._lock:
            self.records[self.zone_id(zone)][record_id].update(fields)

    def inject(self, status: int | None, **kw: Any) -> None:
        with self._lock:
            self.injections.append(Injection(status, **kw))

    def writes(self) -> list[Seen]:
        return [r for r in self.requests if r.method != "GET"]

    # -- request handling -------------------------------------------------------------------------
    def _injection(self, method: str, path: str) -> Injection | None:
        with self._lock:
            for inj in self.injections:
                if (inj.method in (None, method)) and (
                    inj.path_contains is None or inj.path_contains in path
                ):
                    inj.times -= 1
                    if inj.times <= 0:
                        self.injections.remove(inj)
                    return inj
        return None

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        """The ``result`` (and ``result_info``) of one authorised call, or raises ApiError."""
        parts = path.strip("/").split("/")
        with self._lock:
            if parts == ["zones"] and method == "GET":
                zones = [
                    {"id": zid, "name": name, "status": "active"}
                    for zid, name in self.zones.items()
                    if "name" not in query or query["name"].lower() == name
                ]
                return self._page(zones, query)
            if len(parts) < 3 or parts[0] != "zones" or parts[2] != "dns_records":
                raise ApiError(404, 7000, "No route for that URI")
            zone_id = parts[1]
            if zone_id not in self.zones:
                raise ApiError(
                    404,
                    7003,
                    f"Could not route to {path}, perhaps your object identifier is invalid?",
                )
            recs = self.records[zone_id]
            if len(parts) == 3 and method == "GET":
                found = [dict(r) for r in recs.values()]
                for attr in ("type", "name", "content"):
                    if attr in query:
                        found = [r for r in found if str(r[attr]).lower() == query[attr].lower()]
                return self._page(found, query)
            if len(parts) == 3 and method == "POST":
                return self._create(zone_id, body)
            if len(parts) != 4:
                raise ApiError(404, 7000, "No route for that URI")
            rec = recs.get(parts[3])
            if rec is None:
                raise ApiError(404, 81044, "Record does not exist.")
            if method == "GET":
                return dict(rec)
            if method == "DELETE":
                del recs[parts[3]]
                return {"id": parts[3]}
            if method in ("PUT", "PATCH"):
                merged = {**rec, **body} if method == "PATCH" else dict(body or {})
                return self._create(zone_id, merged, replace=rec)
            raise ApiError(405, 10405, "Method not allowed")

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[Any, dict]:
        try:
            page = max(1, int(query.get("page", 1)))
            per_page = min(self.max_per_page, max(1, int(query.get("per_page", 100))))
        except ValueError:
            raise ApiError(400, 1004, "Invalid pagination parameters") from None
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        }
        return chunk, info

    def _create(
        self, zone_id: str, body: Any, replace: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, 9207, "Request body is invalid.")
        zone = self.zones[zone_id]
        rtype = str(body.get("type", "")).upper()
        if rtype not in TYPES:
            raise ApiError(400, 9000, "DNS record type is invalid.")
        name = str(body.get("name", "")).lower().rstrip(".")
        if name in ("", "@"):
            name = zone
        elif name != zone and not name.endswith("." + zone):
            name = f"{name}.{zone}"
        content = self._content(rtype, str(body.get("content", "")))
        proxied = bool(body.get("proxied", False)) and rtype in ("A", "AAAA", "CNAME")
        ttl = 1 if proxied else body.get("ttl", 1)
        if not isinstance(ttl, int) or not (ttl == 1 or 60 <= ttl <= 86400):
            raise ApiError(
                400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."
            )
        priority = body.get("priority")
        if rtype == "MX" and (not isinstance(priority, int) or not 0 <= priority <= 65535):
            raise ApiError(400, 9100, "MX records require a priority between 0 and 65535.")
        others = [r for r in self.records[zone_id].values() if r is not replace]
        for other in others:
            if other["name"] != name:
                continue
            same = (other["type"], other["content"], other.get("priority"))
            if same == (rtype, content, priority if rtype == "MX" else None):
                raise ApiError(400, 81058, "An identical record already exists.")
            if "CNAME" in (rtype, other["type"]):
                raise ApiError(
                    400, 81053, "An A, AAAA, or CNAME record with that host already exists."
                )
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        rec = {
            "id": replace["id"] if replace else uuid.uuid4().hex,
            "zone_id": zone_id,
            "zone_name": zone,
            "name": name,
            "type": rtype,
            "content": content,
            "proxiable": rtype in ("A", "AAAA", "CNAME"),
            "proxied": proxied,
            "ttl": ttl,
            "locked": False,
            "meta": {"auto_added": False, "source": "primary"},
            "comment": body.get("comment"),
            "tags": [],
            "created_on": replace["created_on"] if replace else now,
            "modified_on": now,
        }
        if rtype == "MX":
            rec["priority"] = priority
        self.records[zone_id][rec["id"]] = rec
        return dict(rec)

    @staticmethod
    def _content(rtype: str, content: str) -> str:
        content = content.strip()
        if not content:
            raise ApiError(400, 9005, f"Content for {rtype} record is required.")
        if rtype in ("A", "AAAA"):
            try:
                addr = ipaddress.ip_address(content)
            except ValueError:
                addr = None
            if addr is None or (addr.version == 4) != (rtype == "A"):
                raise ApiError(400, 9005, f"Content for {rtype} record is invalid.")
            return str(addr)
        if rtype in ("MX", "CNAME"):
            return content.rstrip(".")
        if rtype == "TXT":
            if len(content) > 2048:
                raise ApiError(400, 9005, "TXT content must be 2048 characters or fewer.")
            if content.startswith('"'):
                strings = _QUOTED.findall(content)
                rest = _QUOTED.sub("", content).strip()
                if rest or any(len(_unescape(s).encode()) > 255 for s in strings):
                    raise ApiError(
                        400,
                        9005,
                        "TXT content must be quoted character strings of at most 255 bytes each.",
                    )
            elif len(content.encode()) > 255:  # documented: long strings are split automatically
                data = content.encode()
                content = " ".join(
                    '"' + data[i : i + 255].decode(errors="replace").replace('"', '\\"') + '"'
                    for i in range(0, len(data), 255)
                )
        return content


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per answer
    wbufsize = -1  # headers and body leave in one write (flushed after each request)
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        ctype = "text/html" if isinstance(payload, bytes) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _dispatch(self) -> None:
        fake: FakeCloudflare = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        path = url.path[len(PREFIX) :] if url.path.startswith(PREFIX) else url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        seen = Seen(self.command, path, query, body)
        with fake._lock:
            fake.requests.append(seen)
        inj = fake._injection(self.command, path)
        if inj is not None and inj.status is not None:
            time.sleep(inj.delay)
            seen.status = inj.status
            payload = inj.body
            if payload is None:
                payload = _envelope(
                    None,
                    [
                        {
                            "code": 971,
                            "message": "Please wait and consider throttling your request speed",
                        }
                    ],
                )
                if inj.status >= 500:
                    payload = b"<html><body>502 Bad Gateway</body></html>"
            return self._send(inj.status, payload, inj.headers)
        if inj is not None and not inj.process_first:
            time.sleep(inj.delay)
        if self.headers.get("Authorization") != f"Bearer {fake.token}":
            seen.status = 403
            return self._send(
                403, _envelope(None, [{"code": 9109, "message": "Invalid access token"}])
            )
        try:
            result = fake.handle(self.command, path, query, body)
        except ApiError as exc:
            seen.status = exc.status
            return self._send(
                exc.status, _envelope(None, [{"code": exc.code, "message": exc.message}])
            )
        if inj is not None and inj.process_first:
            time.sleep(inj.delay)
        payload = _envelope(result)
        if isinstance(result, tuple):
            payload = {**_envelope(result[0]), "result_info": result[1]}
        seen.status = 200
        self._send(200, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch
