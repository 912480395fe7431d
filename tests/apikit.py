"""A world for the HTTP API tests: a real `penguinctl serve` (no scheduler) on loopback over a
state store with two tenants applied by the CLI, API keys of every role, a campaign, a plan
and a webhook endpoint per tenant; helpers to call the API with a role's key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from servekit import Serve
from sshd import free_port

TENANT_ROLES = ("viewer", "member", "admin", "owner")


def call_as(serve: Serve, key: dict, method: str, path: str, **kw: Any) -> httpx.Response:
    """``method path`` under ``/api/v1`` of ``serve`` with ``key``'s token."""
    headers = {"Authorization": f"Bearer {key['token']}"}
    return httpx.request(method, f"{serve.base}/api/v1{path}", headers=headers, timeout=60, **kw)


def wait_for(predicate: Any, what: str, timeout: float = 120, every: float = 0.05) -> Any:
    """``predicate()``'s first truthy answer, polled every ``every`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def tenant_spec(tenant: str, domains: int = 2) -> str:
    docs = [
        f"apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {{name: {tenant}}}\n"
        f"spec: {{plan: business, contact: ops@{tenant}-0.example}}\n",
        "apiVersion: penguinctl/v1\nkind: Server\n"
        f"metadata: {{name: {tenant}-mx, tenant: {tenant}}}\n"
        "spec:\n  provider: external\n  external: {ips: [192.0.2.10]}\n"
        f"  hostname: mx.{tenant}-0.example\n",
        "apiVersion: penguinctl/v1\nkind: DnsProvider\n"
        f"metadata: {{name: {tenant}-zones, tenant: {tenant}}}\n"
        "spec: {type: zonefile}\n",
    ]
    for i in range(domains):
        docs.append(
            f"apiVersion: penguinctl/v1\nkind: Domain\n"
            f"metadata: {{name: {tenant}-{i}.example, tenant: {tenant}}}\n"
            f"spec:\n  server: {tenant}-mx\n  dns: {tenant}-zones\n"
            f"  dmarc: {{policy: none, rua: dmarc@{tenant}-0.example}}\n"
            "  mailboxes:\n    - {local: user0, display_name: User 0, daily_limit: 30}\n"
        )
    return "---\n".join(docs)


def campaign_spec(tenant: str, name: str) -> str:
    return f"""\
apiVersion: penguinctl/v1
kind: Campaign
metadata: {{name: {name}, tenant: {tenant}}}
spec:
  senders: [user0@{tenant}-0.example]
  schedule: {{timezone: lead, fallback_timezone: America/New_York, hours: "09:00-17:00"}}
  unsubscribe: {{url: "https://track.{tenant}-0.example/u/{{token}}"}}
  steps:
    - subject: "Hi {{{{ first_name | default('there') }}}}"
      body: "Hello {{{{ first_name | default('there') }}}}"
"""


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "penguinctl", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Tenant:
    name: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> key (token, id)
    objects: dict[str, str] = field(default_factory=dict)  # path parameter -> a value of it
    plan: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    env: dict[str, str]
    serve: Serve
    tmp: Path
    tenants: dict[str, Tenant]
    platform: dict[str, dict[str, Any]]  # role -> key

    @property
    def api(self) -> str:
        return f"{self.serve.base}/api/v1"

    def call(self, key: dict[str, Any] | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key['token']}"
        return httpx.request(method, self.api + path, headers=headers, timeout=60, **kw)

    def new_key(self, tenant: str, role: str) -> dict[str, Any]:
        args = ["apikeys", "create", "--role", role, "-o", "json"]
        if tenant:
            args += ["--tenant", tenant]
        done = cli(self.env, *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def build(tmp: Path, state_url: str, tenants: tuple[str, ...] = ("acme", "globex")) -> World:
    home = tmp / "home"
    home.mkdir()
    dead = free_port("127.0.0.1")  # nothing answers there: live DNS checks fail fast
    (home / "config.yaml").write_text(f"dns:\n  resolvers: ['127.0.0.1:{dead}']\n")
    env = {
        "PENGUINCTL_HOME": str(home),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_API_RATE": "100000",
        "PENGUINCTL_API_BURST": "100000",
    }
    for name in tenants:
        spec = tmp / f"{name}.yaml"
        spec.write_text(tenant_spec(name))
        done = cli(env, "apply", "-f", str(spec), "--yes")
        assert done.returncode == 0, done.stderr
    serve = Serve(env, "--no-scheduler").start()
    serve.ready()
    world = World(env=env, serve=serve, tmp=tmp, tenants={}, platform={})
    for role in ("admin", "operator", "readonly"):
        world.platform[role] = world.new_key("", role)
    for name in tenants:
        t = Tenant(name)
        for role in TENANT_ROLES:
            t.keys[role] = world.new_key(name, role)
        world.tenants[name] = t
        admin = t.keys["admin"]
        res = world.call(admin, "POST", "/campaigns",
                         json={"files": {"c.yaml": campaign_spec(name, f"{name}-q4")}})  # fmt: skip
        assert res.status_code == 200, res.text
        csv = "email,first_name\n" + "".join(f"p{i}@{name}-leads.example,P\n" for i in range(5))
        res = world.call(admin, "POST", f"/campaigns/{name}-q4/leads", content=csv.encode(),
                         headers={"content-type": "text/csv"})  # fmt: skip
        assert res.status_code == 200, res.text
        res = world.call(admin, "POST", "/plans",
                         json={"files": {f"{name}.yaml": tenant_spec(name, 3)}})  # fmt: skip
        assert res.status_code == 201, res.text
        t.plan = res.json()
        res = world.call(
            world.platform["admin"],
            "POST",
            "/webhooks",
            json={"url": f"http://127.0.0.1:{dead}/{name}", "tenant": name, "allow_private": True},
        )
        assert res.status_code == 201, res.text
        events = world.call(admin, "GET", "/events").json()["items"]
        t.objects = {
            "tenants": name,
            "servers": f"{name}-mx",
            "domains": f"{name}-0.example",
            "mailboxes": f"user0@{name}-0.example",
            "dnsproviders": f"{name}-zones",
            "dkim": f"{name}-0.example",
            "campaigns": f"{name}-q4",
            "plans": t.plan["id"],
            "webhooks": res.json()["id"],
            "events": events[0]["id"],
            "apikeys": t.keys["viewer"]["id"],
        }
    return world
