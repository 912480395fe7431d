"""The HTTP API (issue 21) served by a real `penguinctl serve` on loopback, on SQLite and
PostgreSQL, driven with httpx:

- an isolation matrix generated from the OpenAPI document: every operation, called with every
  role of tenant globex on tenant acme's objects, answers 403/404 exactly as for a missing object
  and never returns acme's data; lists answer globex's rows only;
- every operation on globex's own objects, with every role, answers 403 exactly when the
  permission matrix says so (and never 401 or 5xx otherwise); what the keys did is audited with
  the key as the actor;
- problem documents, pagination, rate limits (429 + Retry-After), body limits.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest
from apikit import TENANT_ROLES, World, build, campaign_spec, tenant_spec

from penguinctl.identity import permissions

A, B = "acme", "globex"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    from conftest import PG_BASE, _pg_admin
    from daemons import missing
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'state.db'}"
    else:
        schema = f"pt_{secrets.token_hex(6)}"
        admin = _pg_admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
        except OperationalError as exc:
            admin.dispose()
            missing(f"PostgreSQL at {PG_BASE} is unreachable: {str(exc.orig).strip()[:200]}")
        url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    w = build(tmp, url)
    try:
        yield w
    finally:
        w.serve.stop()
        if schema is not None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()


def operations(world: World) -> list[tuple[str, str, dict]]:
    doc = world.call(None, "GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    ops = [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) >= 50
    return ops


def _object_of(template: str, objects: dict[str, str]) -> str | None:
    first = template.strip("/").split("/")[0]
    return objects.get(first)


def request_for(world: World, method: str, template: str, op: dict, target: str,
                objects: dict[str, str]) -> tuple[str, dict]:  # fmt: skip
    """The path (parameters filled with ``objects``' values) and request options."""
    value = _object_of(template, objects) or "nothing-here"
    if "{run_id}" in template:
        value = "999999"
    path = re.sub(r"\{[^}]+\}", value, template)
    kw: dict = {}
    names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
    params = {}
    if "tenant" in names:
        params["tenant"] = target
    if "email" in names:
        params["email"] = f"p0@{target}-leads.example"
    if params:
        kw["params"] = params
    plan = world.tenants[target].plan
    bodies = {
        ("POST", "/apikeys"): {"role": "viewer", "tenant": target},
        ("POST", "/apikeys/{key_id}/rotate"): {"overlap": "0s"},
        ("POST", "/specs/validate"): {"files": {"t.yaml": tenant_spec(target)}},
        ("POST", "/plans"): {"files": {"t.yaml": tenant_spec(target)}},
        ("POST", "/plans/{plan_id}/apply"): {"checksum": plan["checksum"]},
        ("POST", "/campaigns"): {"files": {"c.yaml": campaign_spec(target, f"{target}-q4")}},
        ("POST", "/campaigns/{name}/pause"): {"reason": "test"},
        ("POST", "/campaigns/{name}/resolve"): {"verdict": "sent"},
        ("POST", "/leads/export"): {"email": f"p0@{target}-leads.example"},
        ("POST", "/leads/forget"): {"email": f"p1@{target}-leads.example"},
        ("POST", "/suppressions"): {"emails": ["s@suppressed.example"], "tenant": target},
        ("POST", "/webhooks"): {"url": "https://hooks.invalid/x", "tenant": target},
    }
    if (method, template) in bodies:
        kw["json"] = bodies[(method, template)]
    elif template == "/campaigns/{name}/leads":
        kw["content"] = f"email\np9@{target}-leads.example\n".encode()
        kw["headers"] = {"content-type": "text/csv"}
    elif method == "POST":
        kw["json"] = {}
    return path, kw


def _without(text: str, *values: str) -> str:
    for v in sorted(values, key=len, reverse=True):
        text = text.replace(v, "<asked>")
    return text


def test_isolation_matrix(world: World) -> None:
    """Every operation, every role of globex, aimed at acme: 403 or 404 (as for a missing
    object), or globex's own (empty) share of a list; never a trace of acme."""
    a = world.tenants[A]
    missing = {k: f"zz{v}" if k not in ("plans", "apikeys") else "zz000000000000" for k, v in
               a.objects.items()}  # fmt: skip
    checked = 0
    for method, template, op in operations(world):
        action = op["x-penguinctl-action"]
        for role in TENANT_ROLES:
            key = world.tenants[B].keys[role]
            path, kw = request_for(world, method, template, op, A, a.objects)
            res = world.call(key, method, path, **kw)
            where = f"{role} {method} {path}: {res.status_code} {res.text[:300]}"
            assert res.status_code < 500, where
            asked = [path, _object_of(template, a.objects) or path]
            asked += [str(v) for v in (kw.get("params") or {}).values()]
            body_names_acme = ("json" in kw and A in json.dumps(kw["json"])) or "content" in kw
            if not permissions.allowed(action, role, tenant=True):
                assert res.status_code == 403, where
                assert res.json()["type"] == "urn:penguinctl:problem:forbidden", where
            elif "{" in template:
                assert res.status_code in (403, 404), where
                # exactly as for a missing object
                miss_path, miss_kw = request_for(world, method, template, op, A, missing)
                other = world.call(key, method, miss_path, **miss_kw)
                assert other.status_code == res.status_code, (where, other.text)
                mine, theirs = res.json(), other.json()
                assert mine["type"] == theirs["type"], where
                value = _object_of(template, a.objects) or ""
                missing_value = _object_of(template, missing) or ""
                assert mine.get("detail", "").replace(value, "X") == theirs.get(
                    "detail", ""
                ).replace(missing_value, "X"), where
            elif body_names_acme or kw.get("params"):
                assert res.status_code in (200, 403, 404), where
            else:
                assert res.status_code in (200, 201), where
            if not body_names_acme:
                assert A not in _without(res.text, *asked).lower(), where
            checked += 1
    assert checked >= 200


def test_lists_hold_only_the_keys_tenant(world: World) -> None:
    key = world.tenants[B].keys["owner"]
    for path in ("/tenants", "/servers", "/domains", "/mailboxes", "/dnsproviders", "/dkim",
                 "/campaigns", "/events", "/audit", "/webhooks", "/plans", "/apikeys", "/checks",
                 "/invoices", "/backups", "/jobs", "/jobs/runs"):  # fmt: skip
        res = world.call(key, "GET", path, params={"limit": 500})
        assert res.status_code == 200, (path, res.text)
        assert A not in res.text.lower(), (path, res.text[:300])
    # the platform sees both
    doms = world.call(world.platform["readonly"], "GET", "/domains").json()["items"]
    assert {d["tenant"] for d in doms} == {A, B}


def test_permission_matrix_on_own_objects(world: World) -> None:
    """globex's own objects: 403 exactly where the permission matrix says no."""
    b = world.tenants[B]
    victim = world.new_key(B, "viewer")  # rotated and revoked by the owner below
    objects = {**b.objects, "apikeys": victim["id"]}
    ops = operations(world)
    ops.sort(key=lambda o: o[0] == "DELETE")  # deletions last
    for method, template, op in ops:
        action = op["x-penguinctl-action"]
        for role in TENANT_ROLES:
            path, kw = request_for(world, method, template, op, B, objects)
            res = world.call(b.keys[role], method, path, **kw)
            where = f"{role} {method} {path}: {res.status_code} {res.text[:300]}"
            assert res.status_code < 500 and res.status_code != 401, where
            if permissions.allowed(action, role, tenant=True):
                if res.status_code == 403:  # allowed by role; refused for what it asked
                    assert template in ("/leads/forget",), where
            else:
                assert res.status_code == 403, where
    # the keys are the audit actors of what they did
    audit = world.call(world.platform["readonly"], "GET", "/audit",
                       params={"actor": f"key:{b.keys['member']['id']}", "limit": 500})  # fmt: skip
    actions = {e["action"] for e in audit.json()["items"]}
    assert {"campaign.pause", "campaign.resume", "leads.import"} <= actions, actions
    assert all(e["tenant"] == B for e in audit.json()["items"])
    revoked = world.call(victim, "GET", "/me")
    assert revoked.status_code == 401


def test_problems_pages_and_limits(world: World) -> None:
    key = world.tenants[A].keys["viewer"]
    # pagination: a cursor walks the list without repeats
    seen, cursor = [], None
    while True:
        page = world.call(key, "GET", "/mailboxes", params={"limit": 1, "cursor": cursor}).json()
        seen += [m["name"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 2
    bad = world.call(key, "GET", "/domains", params={"cursor": "%%%"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["type"] == "urn:penguinctl:problem:usage" and bad.json()["exit_code"] == 2
    assert world.call(key, "GET", "/domains", params={"limit": 0}).status_code == 422
    # spec errors with file:line:col
    broken = (
        "apiVersion: penguinctl/v1\nkind: Domain\n"
        "metadata: {name: acme-9.example, tenant: acme}\nspec: {}\n"
    )
    res = world.call(world.tenants[A].keys["admin"], "POST", "/specs/validate",
                     json={"files": {"broken.yaml": broken}})  # fmt: skip
    assert res.status_code == 422, res.text
    body = res.json()
    assert body["type"] == "urn:penguinctl:problem:spec-invalid" and body["exit_code"] == 3
    assert body["errors"][0]["file"] == "broken.yaml" and body["errors"][0]["line"] >= 1
    # secrets the server holds are not the caller's to reference
    res = world.call(world.tenants[A].keys["admin"], "POST", "/specs/validate", json={"files": {
        "x.yaml": tenant_spec(A).replace("daily_limit: 30}", "daily_limit: 30, password: "
                                         "'env:PENGUINCTL_MASTER_KEY'}")}})  # fmt: skip
    assert res.status_code == 422 and "env: secret references" in res.text, res.text
    # a plan's checksum must match: the CLI's lock/checksum class
    plan = world.tenants[A].plan
    res = world.call(world.tenants[A].keys["admin"], "POST", f"/plans/{plan['id']}/apply",
                     json={"checksum": "0" * 64})  # fmt: skip
    assert res.status_code == 409 and res.json()["exit_code"] == 7
    # request size limits
    huge = {"files": {"x.yaml": "#" * 70_000}}
    res = world.call(key, "POST", "/specs/validate", json=huge)
    assert res.status_code == 413
    # the docs page: self-contained (no CDN), every operation listed
    docs = world.call(None, "GET", "/docs")
    assert docs.status_code == 200 and "/api/v1/domains/{name}" in docs.text
    assert "<script" not in docs.text and "cdn" not in docs.text.lower()
    # unauthenticated: 401 with WWW-Authenticate
    res = world.call(None, "GET", "/domains")
    assert res.status_code == 401 and res.headers["www-authenticate"].startswith("Bearer")


def test_rate_limit(world: World, tmp_path) -> None:
    """A key's bucket empties: 429 with Retry-After; another key is not affected."""
    from servekit import Serve

    # a token every 100 s: the bucket cannot refill during the test, however slow the machine
    env = {**world.env, "PENGUINCTL_API_RATE": "0.01", "PENGUINCTL_API_BURST": "5"}
    serve = Serve(env, "--no-scheduler").start()
    try:
        serve.ready()
        api = f"{serve.base}/api/v1"
        import httpx

        first = world.tenants[A].keys["viewer"]
        other = world.tenants[B].keys["viewer"]
        codes = []
        for _ in range(8):
            res = httpx.get(f"{api}/me", headers={"Authorization": f"Bearer {first['token']}"})
            codes.append(res.status_code)
        assert codes == [200] * 5 + [429] * 3, codes
        limited = httpx.get(f"{api}/me", headers={"Authorization": f"Bearer {first['token']}"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["type"] == "urn:penguinctl:problem:rate-limited"
        res = httpx.get(f"{api}/me", headers={"Authorization": f"Bearer {other['token']}"})
        assert res.status_code == 200
    finally:
        serve.stop()


def test_apply_through_the_api(world: World) -> None:
    """POST /plans/{id}/apply: 202, a status URL, the job applies under the tenant's lock; the
    key is the audit actor; a plan applies once."""
    a = world.tenants[A]
    admin = a.keys["admin"]
    plan = a.plan
    res = world.call(
        admin, "POST", f"/plans/{plan['id']}/apply", json={"checksum": plan["checksum"]}
    )
    assert res.status_code == 202, res.text
    status_url = res.headers["location"]
    assert status_url == f"/api/v1/plans/{plan['id']}"
    end = time.monotonic() + 120
    while time.monotonic() < end:
        found = world.call(admin, "GET", f"/plans/{plan['id']}").json()
        if found["status"] in ("applied", "failed", "no-op"):
            break
        time.sleep(0.2)
    assert found["status"] == "applied" and found["exit_code"] == 0, found
    again = world.call(admin, "POST", f"/plans/{plan['id']}/apply",
                       json={"checksum": plan["checksum"]})  # fmt: skip
    assert again.status_code == 400
    names = {d["name"] for d in world.call(admin, "GET", "/domains").json()["items"]}
    assert f"{A}-2.example" in names
    audit = world.call(admin, "GET", "/audit", params={"resource": f"{A}-2.example"}).json()
    assert audit["items"] and {e["actor"] for e in audit["items"]} == {f"key:{admin['id']}"}


def test_digits_that_are_not_decimal_are_a_404_not_a_500(world: World) -> None:
    """A reference made of Unicode digits that ``int`` refuses ('¹0': ``isdigit`` is true, but
    it is no number) is an unknown object, like any other (found by schemathesis)."""
    admin = world.platform["admin"]
    for path in ("/invoices/%C2%B90", "/invoices/%C2%B90/html", "/invoices/%C2%B2"):
        answer = world.call(admin, "GET", path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


def test_parsers_refuse_digits_that_are_not_decimal() -> None:
    from penguinctl.dns.query import Nameserver
    from penguinctl.errors import PenguinError
    from penguinctl.web.server import parse_listen

    with pytest.raises(PenguinError, match="HOST:PORT"):
        parse_listen("127.0.0.1:¹²")
    with pytest.raises(PenguinError, match="bad port"):
        Nameserver.parse("127.0.0.1:¹²")
