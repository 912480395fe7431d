"""A stateful local HTTP double of MailU's REST API (``/api/v1``, release line 2024.06) on
127.0.0.1, written from MailU's own code (tag 2024.06.57: ``core/admin/mailu/api/common.py``,
``api/v1/{domain,user,alias}.py``, ``models.py``). What it does like MailU:

- Auth (``common.api_token_authorization``): an IP rate-limited for failed tokens gets HTTP 429
  ``{"message": "Too many attempts from your IP (rate-limit)"}`` before anything else; no
  ``Authorization`` header: 401 ``{"message": "A valid Authorization header is mandatory"}``;
  a wrong token (compared after stripping a ``Bearer `` prefix, so the bare token works too;
  tokens under 4 characters never match): 403 ``{"message": "Invalid API token"}``, which counts
  toward the per-IP limit (``auth_ratelimit`` failures, then 429). The limiter's counter is
  per IP (``X-Real-IP`` respected), as MailU's.
- flask-restx validates a write's JSON payload against the endpoint's model *before* the auth
  decorator runs (``validate=True``): a wrong type or a missing required field is HTTP 400
  ``{"errors": {"<field>": "<jsonschema message>"}, "message": "Input payload validation
  failed"}`` (no ``code``); ``null`` is not a string. Unknown fields are ignored.
- Endpoint answers are ``{"code": <int>, "message": "<text>"}`` with MailU's texts; creates
  answer 200 and do not return the object; duplicates 409; unknown objects 404; invalid names
  400. Quirks kept: ``GET /domain/<bad-name>`` answers HTTP 200 with body code 400;
  ``PATCH /domain/<unknown>`` is HTTP 500 ``{"message": "Internal Server Error"}`` (MailU reads
  ``data`` before assigning it); ``POST /alias`` without ``destination`` is a 500 too.
- ``POST /user`` needs the domain (404), respects ``max_users`` (409 "Too many users"), and
  stores ``raw_password`` hashed (PBKDF2 here, bcrypt_sha256 in MailU); ``GET /user/<email>``
  returns every field (``null`` where unset) including the ``password`` hash, ``GET /user``
  leaves out ``null`` fields (``skip_none``). Addresses and domain names are lowercased.
- ``POST /alias``: the domain must exist (404), every destination must be an existing *user*
  (404 "does not exist"), then a duplicate is 409. Destinations are stored sorted and
  de-duplicated (``CommaSeparatedList``). ``PATCH /alias`` answers 200 too.
- ``DELETE /domain/<d>`` removes its users, aliases and alternatives (``delete-orphan``).
- Flask's own 404/405 for unknown routes and methods.

Test helpers: ``login(email, password)`` (does the password log in: user enabled, hash
matches), ``password_hash(email)``, ``add_domain``/``add_user``/``add_alias`` and ``remove_*``
(out of band, as an admin in MailU's web UI would), ``inject(status, ...)`` (answer the next
matching requests with a status, e.g. 503 or 429), ``requests`` (method, path, status, payload
with ``raw_password`` masked), ``writes()``, ``count(method, prefix)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from fakes.loopback import LoopbackHttpDouble

PREFIX = "/api/v1"
HASH_ROUNDS = 1000  # the double's own cost; MailU uses bcrypt_sha256 with CREDENTIAL_ROUNDS

NOT_FOUND = {
    "message": "The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again."
}
NOT_ALLOWED = {"message": "The method is not allowed for the requested URL."}
BAD_REQUEST = {
    "message": "The browser (or proxy) sent a request that this server could not understand."
}
INTERNAL = {"message": "Internal Server Error"}

# validators.domain / validators.email (approximations of the library MailU calls)
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-_]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9][A-Za-z0-9-_]{0,61}[A-Za-z]$"
)
_LOCAL = re.compile(
    r"^[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*$", re.IGNORECASE
)


def valid_domain(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(_DOMAIN.match(value))


def valid_email(value: Any) -> bool:
    if not isinstance(value, str) or "@" not in value:
        return False
    local, domain = value.rsplit("@", 1)
    return bool(local) and len(local) <= 64 and bool(_LOCAL.match(local)) and valid_domain(domain)


# -- flask-restx payload models (jsonschema types) ------------------------------------------------
S, N, B, L, D = "string", "integer", "boolean", "list", "date"
DOMAIN_CREATE = {
    "name": S,
    "comment": S,
    "max_users": N,
    "max_aliases": N,
    "max_quota_bytes": N,
    "signup_enabled": B,
    "alternatives": L,
}
DOMAIN_UPDATE = {k: v for k, v in DOMAIN_CREATE.items() if k != "name"}
_USER_COMMON = {
    "comment": S,
    "quota_bytes": N,
    "global_admin": B,
    "enabled": B,
    "change_pw_next_login": B,
    "enable_imap": B,
    "enable_pop": B,
    "allow_spoofing": B,
    "forward_enabled": B,
    "forward_destination": L,
    "forward_keep": B,
    "reply_enabled": B,
    "reply_subject": S,
    "reply_body": S,
    "reply_startdate": D,
    "reply_enddate": D,
    "displayed_name": S,
    "spam_enabled": B,
    "spam_mark_as_read": B,
    "spam_threshold": N,
}
USER_CREATE = {"email": S, "raw_password": S, **_USER_COMMON}
USER_UPDATE = {"raw_password": S, **_USER_COMMON}
ALIAS_UPDATE = {"comment": S, "destination": L, "wildcard": B}
ALIAS_CREATE = {**ALIAS_UPDATE, "email": S}
MINIMUM = {"max_users": -1, "max_aliases": -1, "max_quota_bytes": 0}
USER_FIELDS = (
    "email",
    "password",
    "comment",
    "quota_bytes",
    "quota_bytes_used",
    "global_admin",
    "enabled",
    "change_pw_next_login",
    "enable_imap",
    "enable_pop",
    "allow_spoofing",
    "forward_enabled",
    "forward_destination",
    "forward_keep",
    "reply_enabled",
    "reply_subject",
    "reply_body",
    "reply_startdate",
    "reply_enddate",
    "displayed_name",
    "spam_enabled",
    "spam_mark_as_read",
    "spam_threshold",
)
_JSON_TYPE = {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}


def _type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE.get(type(value), type(value).__name__)


def validate(payload: Any, model: dict[str, str], required: tuple[str, ...]) -> dict[str, str]:
    """flask-restx ``validate=True``: jsonschema errors keyed by field path."""
    if not isinstance(payload, dict):
        return {"": f"{json.dumps(payload)} is not of type 'object'"}
    errors: dict[str, str] = {}
    for name in required:
        if name not in payload:
            errors[name] = f"'{name}' is a required property"
    for name, kind in model.items():
        if name not in payload:
            continue
        value = payload[name]
        shown = json.dumps(value)
        if kind in (S, D) and not isinstance(value, str):
            errors[name] = f"{shown} is not of type 'string'"
        elif kind == N and (not isinstance(value, int) or isinstance(value, bool)):
            errors[name] = f"{shown} is not of type 'integer'"
        elif kind == N and name in MINIMUM and value < MINIMUM[name]:
            errors[name] = f"{value} is less than the minimum of {MINIMUM[name]}"
        elif kind == B and not isinstance(value, bool):
            errors[name] = f"{shown} is not of type 'boolean'"
        elif kind == L and not isinstance(value, list):
            errors[name] = f"{shown} is not of type 'array'"
        elif kind == L:
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    errors[f"{name}.{i}"] = f"{json.dumps(item)} is not of type 'string'"
        elif kind == D and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            errors[name] = f"{shown} is not a 'date'"
    return errors


# -- passwords --------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, HASH_ROUNDS)
    b64 = base64.b64encode
    return f"$pbkdf2-sha256${HASH_ROUNDS}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    if not password:
        return False  # MailU: an empty password never logs in
    _, scheme, rounds, salt, digest = stored.split("$")
    assert scheme == "pbkdf2-sha256"
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(rounds))
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass
class Seen:
    method: str
    path: str  # under /api/v1, unquoted
    payload: Any = None  # raw_password masked
    status: int = 0


@dataclass
class Injection:
    status: int
    method: str | None = None
    prefix: str | None = None
    times: int = 1
    body: Any = None


@dataclass
class _State:
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    alternatives: dict[str, str] = field(default_factory=dict)  # alternative -> domain
    relays: set[str] = field(default_factory=set)


class ApiAnswer(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _answer(code: int, message: str, status: int | None = None) -> ApiAnswer:
    return ApiAnswer(code if status is None else status, {"code": code, "message": message})


class FakeMailu(LoopbackHttpDouble):
    url_path = PREFIX

    def __init__(
        self,
        *,
        api_token: str,
        hostname: str = "mail.example.test",
        auth_ratelimit: int | None = 5,
        default_quota: int = 10**9,
        default_spam_threshold: int = 80,
    ) -> None:
        self.api_token = api_token
        self.hostname = hostname
        self.auth_ratelimit = auth_ratelimit
        self.default_quota = default_quota
        self.default_spam_threshold = default_spam_threshold
        self.state = _State()
        self.requests: list[Seen] = []
        self.injections: list[Injection] = []
        self.failed_auth: dict[str, int] = {}  # client IP -> failed token attempts
        self._lock = threading.RLock()
        self._serve(_Handler, _Server)

    # -- test helpers ---------------------------------------------------------------------------
    def inject(self, status: int, **kw: Any) -> None:
        """Answer the next ``times`` requests (``method``, path ``prefix`` under /api/v1: any
        when None) with ``status`` and ``body`` (default: a Flask-like ``{"message"}``)."""
        with self._lock:
            self.injections.append(Injection(status, **kw))

    def writes(self) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.method != "GET"]

    def count(self, method: str | None = None, prefix: str = "") -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and r.path.startswith(prefix)
            )

    def reset_ratelimit(self) -> None:
        with self._lock:
            self.failed_auth.clear()

    def login(self, email: str, password: str) -> bool:
        """Would ``password`` log ``email`` in (IMAP/SMTP/webmail): user enabled, hash matches."""
        with self._lock:
            user = self.state.users.get(email.lower())
            return bool(user and user["enabled"] and verify_password(password, user["password"]))

    def password_hash(self, email: str) -> str | None:
        with self._lock:
            user = self.state.users.get(email.lower())
            return user["password"] if user else None

    def add_domain(self, name: str, **fields: Any) -> None:
        with self._lock:
            self.state.domains[name.lower()] = self._new_domain(name.lower(), fields)

    def add_user(self, email: str, password: str, **fields: Any) -> None:
        with self._lock:
            email = email.lower()
            self.state.users[email] = self._new_user(email, password, fields)

    def add_alias(self, email: str, destination: list[str], **fields: Any) -> None:
        with self._lock:
            email = email.lower()
            self.state.aliases[email] = self._new_alias(email, destination, fields)

    def remove_user(self, email: str) -> None:
        with self._lock:
            self.state.users.pop(email.lower(), None)

    def remove_alias(self, email: str) -> None:
        with self._lock:
            self.state.aliases.pop(email.lower(), None)

    def remove_domain(self, name: str) -> None:
        with self._lock:
            self._delete_domain(name.lower())

    @property
    def domains(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self.state.domains.items()}

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self.state.users.items()}

    @property
    def aliases(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self.state.aliases.items()}

    # -- models ---------------------------------------------------------------------------------
    def _new_domain(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "comment": data.get("comment", ""),
            "max_users": data.get("max_users", -1),
            "max_aliases": data.get("max_aliases", -1),
            "max_quota_bytes": data.get("max_quota_bytes", 0),
            "signup_enabled": data.get("signup_enabled", False),
            "created_at": date.today().isoformat(),
        }

    def _new_user(self, email: str, password: str, data: dict[str, Any]) -> dict[str, Any]:
        user = {
            "email": email,
            "password": hash_password(password),
            "comment": "",
            "quota_bytes": self.default_quota,
            "quota_bytes_used": 0,
            "global_admin": False,
            "enabled": True,
            "change_pw_next_login": False,
            "enable_imap": True,
            "enable_pop": True,
            "allow_spoofing": False,
            "forward_enabled": False,
            "forward_destination": [],
            "forward_keep": True,
            "reply_enabled": False,
            "reply_subject": None,
            "reply_body": None,
            "reply_startdate": "1900-01-01",
            "reply_enddate": "2999-12-31",
            "displayed_name": "",
            "spam_enabled": True,
            "spam_mark_as_read": True,
            "spam_threshold": self.default_spam_threshold,
        }
        self._set_user_fields(user, data)
        return user

    @staticmethod
    def _set_user_fields(user: dict[str, Any], data: dict[str, Any]) -> None:
        for name in _USER_COMMON:
            if name not in data:
                continue
            if name == "forward_destination":
                if data[name]:  # MailU ignores an empty list
                    user[name] = sorted(set(data[name]))
            else:
                user[name] = data[name]

    @staticmethod
    def _new_alias(email: str, destination: list[str], data: dict[str, Any]) -> dict[str, Any]:
        return {
            "email": email,
            "comment": data.get("comment", ""),
            "destination": sorted(set(destination)),
            "wildcard": data.get("wildcard", False),
        }

    def _fqdn_in_use(self, name: str) -> bool:
        s = self.state
        name = name.lower()
        return name in s.domains or name in s.alternatives or name in s.relays

    def _delete_domain(self, name: str) -> None:
        s = self.state
        s.domains.pop(name, None)
        for table in (s.users, s.aliases):
            for email in [e for e in table if e.rsplit("@", 1)[1] == name]:
                del table[email]
        for alt in [a for a, d in s.alternatives.items() if d == name]:
            del s.alternatives[alt]

    def _domain_view(self, d: dict[str, Any]) -> dict[str, Any]:
        name, host = d["name"], self.hostname
        srv = [
            (p, port, prio)
            for p, port, prio in (
                ("imap", 143, 20),
                ("pop3", 110, 20),
                ("submission", 587, 20),
                ("autodiscover", 443, 10),
                ("submissions", 465, 10),
                ("imaps", 993, 10),
                ("pop3s", 995, 10),
            )
        ]
        ports = {25, 80, 443, 465, 993, 995, 4190}
        return {
            "name": name,
            "comment": d["comment"],
            "managers": [],
            "max_users": d["max_users"],
            "max_aliases": d["max_aliases"],
            "max_quota_bytes": d["max_quota_bytes"],
            "signup_enabled": d["signup_enabled"],
            "alternatives": sorted(a for a, dom in self.state.alternatives.items() if dom == name),
            "dns_autoconfig": [
                f"_{p}._tcp.{name}. 600 IN SRV {prio} 1 {port} {host}."
                if port in ports
                else f"_{p}._tcp.{name}. 600 IN SRV 0 0 0 ."
                for p, port, prio in srv
            ]
            + [
                f"autoconfig.{name}. 600 IN CNAME {host}.",
                f"autodiscover.{name}. 600 IN CNAME {host}.",
            ],
            "dns_mx": f"{name}. 600 IN MX 10 {host}.",
            "dns_spf": f'{name}. 600 IN TXT "v=spf1 mx a:{host} ~all"',
            "dns_dkim": None,  # no key generated by MailU for this domain
            "dns_dmarc": None,
            "dns_dmarc_report": None,
            "dns_tlsa": [],
        }

    @staticmethod
    def _user_view(u: dict[str, Any], *, skip_none: bool) -> dict[str, Any]:
        view = {k: u.get(k) for k in USER_FIELDS}
        return {k: v for k, v in view.items() if v is not None} if skip_none else view

    @staticmethod
    def _alias_view(a: dict[str, Any]) -> dict[str, Any]:
        return {
            "email": a["email"],
            "comment": a["comment"],
            "destination": list(a["destination"]),
            "wildcard": a["wildcard"],
        }

    # -- routes ---------------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[str, str | None, dict[str, str], tuple]:
        """(collection, item, payload model, required fields) for a path, or ApiAnswer 404/405."""
        parts = path.strip("/").split("/") if path.strip("/") else []
        if not parts or parts[0] not in ("domain", "user", "alias"):
            raise ApiAnswer(404, NOT_FOUND)
        kind = parts[0]
        if len(parts) == 1:
            allowed = {"GET", "POST"}
            item = None
        elif len(parts) == 2 and parts[1]:
            allowed = {"GET", "PATCH", "DELETE"}
            item = parts[1]
        else:
            raise ApiAnswer(404, NOT_FOUND)
        if method not in allowed:
            raise ApiAnswer(405, NOT_ALLOWED)
        models = {
            ("domain", "POST"): (DOMAIN_CREATE, ("name",)),
            ("domain", "PATCH"): (DOMAIN_UPDATE, ()),
            ("user", "POST"): (USER_CREATE, ("email", "raw_password")),
            ("user", "PATCH"): (USER_UPDATE, ()),
            ("alias", "POST"): (ALIAS_CREATE, ("email",)),
            ("alias", "PATCH"): (ALIAS_UPDATE, ()),
        }
        model, required = models.get((kind, method), ({}, ()))
        return kind, item, model, required

    def authorize(self, client_ip: str, header: str | None) -> None:
        if self.auth_ratelimit is not None and self.failed_auth.get(client_ip, 0) >= (
            self.auth_ratelimit
        ):
            raise ApiAnswer(429, {"message": "Too many attempts from your IP (rate-limit)"})
        if not header:
            raise ApiAnswer(401, {"message": "A valid Authorization header is mandatory"})
        given = header.removeprefix("Bearer ")
        if len(self.api_token) < 4 or not hmac.compare_digest(
            given.encode(), self.api_token.encode()
        ):
            self.failed_auth[client_ip] = self.failed_auth.get(client_ip, 0) + 1
            raise ApiAnswer(403, {"message": "Invalid API token"})

    def handle(self, method: str, kind: str, item: str | None, data: Any) -> tuple[int, Any]:
        fn = getattr(self, f"_{kind}_{method.lower()}{'_one' if item is not None else ''}")
        return fn(item, data) if item is not None else fn(data)

    # domain ----------------------------------------------------------------------------------
    def _domain_get(self, data: Any) -> tuple[int, Any]:
        return 200, [
            {k: v for k, v in self._domain_view(d).items() if v is not None}
            for d in self.state.domains.values()
        ]

    def _domain_post(self, data: dict[str, Any]) -> tuple[int, Any]:
        name = data["name"]
        if not valid_domain(name):
            raise _answer(400, f"Domain {name} is not a valid domain")
        if self._fqdn_in_use(name):
            raise _answer(409, f"Duplicate domain name {name}")
        alternatives = data.get("alternatives")
        if alternatives is not None:
            if [x for x in alternatives if alternatives.count(x) >= 2]:
                raise _answer(409, "Duplicate alternative domain names in request")
            for alt in alternatives:
                if self._fqdn_in_use(alt):
                    raise _answer(409, f"Duplicate alternative domain name {alt}")
                if not valid_domain(alt):
                    raise _answer(400, f"Alternative domain {alt} is not a valid domain")
            for alt in alternatives:
                self.state.alternatives[alt.lower()] = name.lower()
        self.state.domains[name.lower()] = self._new_domain(name.lower(), data)
        return 200, {"code": 200, "message": f"Domain {name} has been created"}

    def _domain_get_one(self, name: str, data: Any) -> tuple[int, Any]:
        if not valid_domain(name):
            # MailU's quirk: the body says 400, the HTTP status is 200
            return 200, {"code": 400, "message": f"Domain {name} is not a valid domain"}
        found = self.state.domains.get(name.lower())
        if found is None:
            raise _answer(404, f"Domain {name} does not exist")
        return 200, self._domain_view(found)

    def _domain_patch_one(self, name: str, data: dict[str, Any]) -> tuple[int, Any]:
        if not valid_domain(name):
            raise _answer(400, f"Domain {name} is not a valid domain")
        found = self.state.domains.get(name.lower())
        if found is None:
            raise ApiAnswer(500, INTERNAL)  # MailU: UnboundLocalError building the 404 message
        alternatives = data.get("alternatives")
        if alternatives is not None:
            if [x for x in alternatives if alternatives.count(x) >= 2]:
                raise _answer(409, "Duplicate alternative domain names in request")
            for alt in alternatives:
                if self._fqdn_in_use(alt):
                    raise _answer(409, f"Duplicate alternative domain name {alt}")
                if not valid_domain(alt):
                    raise _answer(400, f"Alternative domain {alt} is not a valid domain")
            for alt in alternatives:
                self.state.alternatives[alt.lower()] = name.lower()
        for key in ("comment", "max_users", "max_aliases", "max_quota_bytes", "signup_enabled"):
            if key in data:
                found[key] = data[key]
        return 200, {"code": 200, "message": f"Domain {name} has been updated"}

    def _domain_delete_one(self, name: str, data: Any) -> tuple[int, Any]:
        if not valid_domain(name):
            raise _answer(400, f"Domain {name} is not a valid domain")
        if name.lower() not in self.state.domains:
            raise _answer(404, f"Domain {name} does not exist")
        self._delete_domain(name.lower())
        return 200, {"code": 200, "message": f"Domain {name} has been deleted"}

    # user ------------------------------------------------------------------------------------
    def _user_get(self, data: Any) -> tuple[int, Any]:
        return 200, [self._user_view(u, skip_none=True) for u in self.state.users.values()]

    def _user_post(self, data: dict[str, Any]) -> tuple[int, Any]:
        email = data["email"]
        if not valid_email(email):
            raise _answer(400, f"Provided email address {email} is not a valid email address")
        for dest in data.get("forward_destination") or []:
            if not valid_email(dest):
                raise _answer(
                    400,
                    f"Provided forward destination email address {dest} is not a valid email "
                    "address",
                )
        domain_name = email.lower().rsplit("@", 1)[1]
        domain = self.state.domains.get(domain_name)
        if domain is None:
            raise _answer(404, f"Domain {domain_name} does not exist")
        users = [e for e in self.state.users if e.rsplit("@", 1)[1] == domain_name]
        if domain["max_users"] != -1 and len(users) >= domain["max_users"]:
            raise _answer(409, f"Too many users for domain {domain_name}")
        if email.lower() in self.state.users:
            raise _answer(409, f"User {email} already exists")
        if data.get("forward_enabled") is True and not data.get("forward_destination"):
            raise _answer(400, "forward_destination is mandatory when forward_enabled is true")
        self.state.users[email.lower()] = self._new_user(email.lower(), data["raw_password"], data)
        return 200, {"code": 200, "message": f"User {email} has been created"}

    def _user_get_one(self, email: str, data: Any) -> tuple[int, Any]:
        if not valid_email(email):
            raise _answer(400, f"Provided email address {email} is not a valid email address")
        found = self.state.users.get(email.lower())
        if found is None:
            raise _answer(404, f"User {email} cannot be found")
        return 200, self._user_view(found, skip_none=False)

    def _user_patch_one(self, email: str, data: dict[str, Any]) -> tuple[int, Any]:
        if not valid_email(email):
            raise _answer(400, f"Provided email address {email} is not a valid email address")
        for dest in data.get("forward_destination") or []:
            if not valid_email(dest):
                raise _answer(
                    400,
                    f"Provided forward destination email address {dest} is not a valid email "
                    "address",
                )
        found = self.state.users.get(email.lower())
        if found is None:
            raise _answer(404, f"User {email} cannot be found")
        forwarding = data.get("forward_enabled") is True or (
            "forward_enabled" not in data and found["forward_enabled"]
        )
        if forwarding and "forward_destination" in data and not data["forward_destination"]:
            raise _answer(400, "forward_destination is mandatory when forward_enabled is true")
        if "raw_password" in data:
            found["password"] = hash_password(data["raw_password"])
        self._set_user_fields(found, data)
        return 200, {"code": 200, "message": f"User {email} has been updated"}

    def _user_delete_one(self, email: str, data: Any) -> tuple[int, Any]:
        if not valid_email(email):
            raise _answer(400, f"Provided email address {email} is not a valid email address")
        if self.state.users.pop(email.lower(), None) is None:
            raise _answer(404, f"User {email} cannot be found")
        return 200, {"code": 200, "message": f"User {email} has been deleted"}

    # alias -----------------------------------------------------------------------------------
    def _alias_get(self, data: Any) -> tuple[int, Any]:
        return 200, [self._alias_view(a) for a in self.state.aliases.values()]

    def _check_destinations(self, destination: list[str]) -> None:
        for dest in destination:
            if not valid_email(dest):
                raise _answer(
                    400, f"Provided destination email address {dest} is not a valid email address"
                )
            if dest.lower() not in self.state.users:
                raise _answer(404, f"Provided destination email address {dest} does not exist")

    def _alias_post(self, data: dict[str, Any]) -> tuple[int, Any]:
        email = data["email"]
        if not valid_email(email):
            raise _answer(400, f"Provided alias {email} is not a valid email address")
        domain_name = email.lower().rsplit("@", 1)[1]
        domain = self.state.domains.get(domain_name)
        if domain is None:
            raise _answer(404, f"Domain {domain_name} does not exist ({email})")
        aliases = [e for e in self.state.aliases if e.rsplit("@", 1)[1] == domain_name]
        if domain["max_aliases"] != -1 and len(aliases) >= domain["max_aliases"]:
            raise _answer(409, f"Too many aliases for domain {domain_name}")
        if "destination" not in data:
            raise ApiAnswer(500, INTERNAL)  # MailU: KeyError on data['destination']
        self._check_destinations(data["destination"])
        if email.lower() in self.state.aliases:
            raise _answer(409, f"Duplicate alias {email}")
        self.state.aliases[email.lower()] = self._new_alias(
            email.lower(), data["destination"], data
        )
        return 200, {
            "code": 200,
            "message": f"Alias {email} to destination(s) {data['destination']} has been created",
        }

    def _alias_get_one(self, email: str, data: Any) -> tuple[int, Any]:
        if not valid_email(email):
            raise _answer(
                400, f"Provided alias (email address) {email} is not a valid email address"
            )
        found = self.state.aliases.get(email.lower())
        if found is None:
            raise _answer(404, f"Alias {email} cannot be found")
        return 200, self._alias_view(found)

    def _alias_patch_one(self, email: str, data: dict[str, Any]) -> tuple[int, Any]:
        if not valid_email(email):
            raise _answer(
                400, f"Provided alias (email address) {email} is not a valid email address"
            )
        found = self.state.aliases.get(email.lower())
        if found is None:
            raise _answer(404, f"Alias {email} cannot be found")
        if "destination" in data:
            self._check_destinations(data["destination"])  # nothing committed on failure
        if "comment" in data:
            found["comment"] = data["comment"]
        if "destination" in data:
            found["destination"] = sorted(set(data["destination"]))
        if "wildcard" in data:
            found["wildcard"] = data["wildcard"]
        return 200, {"code": 200, "message": f"Alias {email} has been updated"}

    def _alias_delete_one(self, email: str, data: Any) -> tuple[int, Any]:
        if not valid_email(email):
            raise _answer(
                400, f"Provided alias (email address) {email} is not a valid email address"
            )
        if self.state.aliases.pop(email.lower(), None) is None:
            raise _answer(404, f"Alias {email} cannot be found")
        return 200, {"code": 200, "message": f"Alias {email} has been deleted"}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        fake: FakeMailu = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = unquote(urlsplit(self.path).path)
        seen = Seen(method, path.removeprefix(PREFIX) or "/")
        with fake._lock:
            fake.requests.append(seen)
            try:
                status, body = self._process(fake, method, path, raw, seen)
            except ApiAnswer as answer:
                status, body = answer.status, answer.body
            seen.status = status
        self._send(status, body)

    def _process(
        self, fake: FakeMailu, method: str, path: str, raw: bytes, seen: Seen
    ) -> tuple[int, Any]:
        if not path.startswith(PREFIX + "/"):
            raise ApiAnswer(404, NOT_FOUND)
        sub = path[len(PREFIX) :]
        for inj in list(fake.injections):
            if (inj.method in (None, method)) and sub.startswith(inj.prefix or ""):
                inj.times -= 1
                if inj.times <= 0:
                    fake.injections.remove(inj)
                return inj.status, inj.body if inj.body is not None else {"message": "injected"}
        kind, item, model, required = fake.route(method, sub)
        data: Any = None
        if method in ("POST", "PATCH"):
            try:
                data = json.loads(raw or b"null")
            except ValueError:
                raise ApiAnswer(400, BAD_REQUEST) from None
            if isinstance(data, dict):
                seen.payload = {k: ("***" if k == "raw_password" else v) for k, v in data.items()}
            errors = validate(data, model, required)
            if errors:  # flask-restx validates before the resource method (and its auth)
                raise ApiAnswer(
                    400, {"errors": errors, "message": "Input payload validation failed"}
                )
        client_ip = self.headers.get("X-Real-IP") or self.client_address[0]
        fake.authorize(client_ip, self.headers.get("Authorization"))
        return fake.handle(method, kind, item, data)
