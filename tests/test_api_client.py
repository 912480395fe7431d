"""Client mode and the agency CI (issue 21): with nothing but PENGUINCTL_API_URL and a tenant
`admin` key, `penguinctl plan`/`apply` apply the tenant's spec through a real `serve`; the same
key cannot read another tenant; the audit log names the key. A spec applied through the API and
through the CLI gives the same state and audit events. Schemathesis fuzzes the live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from apikit import build, cli, tenant_spec


@pytest.fixture
def world(tmp_path, state_url):
    w = build(tmp_path, state_url, tenants=("acme",))
    yield w
    w.serve.stop()


def client_env(world, token: str, tmp: Path) -> dict[str, str]:
    home = tmp / "ci-home"
    home.mkdir(exist_ok=True)
    return {
        "PENGUINCTL_API_URL": world.serve.base,
        "PENGUINCTL_API_KEY": token,
        "PENGUINCTL_HOME": str(home),
        # a state store the CI cannot have: client mode never opens it
        "PENGUINCTL_STATE": f"sqlite:///{tmp / 'nowhere' / 'state.db'}",
    }


def test_agency_ci(world, tmp_path) -> None:
    made = world.call(world.platform["admin"], "POST", "/apikeys",
                      json={"role": "admin", "tenant": "agency1", "name": "ci"})  # fmt: skip
    assert made.status_code == 201, made.text
    key = made.json()
    env = client_env(world, key["token"], tmp_path)
    spec = tmp_path / "agency1.yaml"
    spec.write_text(tenant_spec("agency1", 3))

    planned = cli(env, "plan", "-f", str(spec), "--detailed-exitcode")
    assert planned.returncode == 2, planned.stderr
    assert "+ domain/agency1/agency1-2.example" in planned.stdout
    applied = cli(env, "apply", "-f", str(spec), "--yes", "-o", "json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["status"] == "applied"
    again = cli(env, "plan", "-f", str(spec), "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr

    got = cli(env, "get", "domains", "-o", "json")
    assert got.returncode == 0, got.stderr
    assert sorted(d["name"] for d in json.loads(got.stdout)) == [
        f"agency1-{i}.example" for i in range(3)
    ]
    # the same key cannot read another tenant: not found, like a missing one
    other = cli(env, "describe", "domain", "acme-0.example")
    missing = cli(env, "describe", "domain", "nobody-0.example")
    assert other.returncode == missing.returncode == 2
    assert other.stderr.replace("acme-0", "X") == missing.stderr.replace("nobody-0", "X")
    assert json.loads(cli(env, "get", "domains", "--tenant", "acme", "-o", "json").stdout) == []
    events = json.loads(cli(env, "events", "list", "-o", "json").stdout)
    assert events and {e["tenant"] for e in events} == {"agency1"}
    assert json.loads(cli(env, "campaign", "status", "-o", "json").stdout) == []
    # the spec is the tenant's own: another tenant's document is refused (403 -> exit 2)
    foreign = tmp_path / "foreign.yaml"
    foreign.write_text(tenant_spec("acme", 1))
    refused = cli(env, "apply", "-f", str(foreign), "--yes")
    assert refused.returncode == 2 and "tenant agency1" in refused.stderr, refused.stderr
    # an invalid spec: exit 3 with file:line:col
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {name: x}\n")
    invalid = cli(env, "plan", "-f", str(broken))
    assert invalid.returncode == 3 and f"{broken}:3:" in invalid.stderr, invalid.stderr
    assert not (tmp_path / "nowhere").exists()  # no state store was ever opened

    # the audit log names the key for everything it did
    audit = world.call(world.platform["readonly"], "GET", "/audit",
                       params={"tenant": "agency1", "limit": 500}).json()["items"]  # fmt: skip
    actors = Counter(e["actor"] for e in audit)
    assert actors[f"key:{key['id']}"] >= 3, actors
    assert set(actors) == {f"key:{key['id']}", f"key:{world.platform['admin']['id']}"}, actors
    a_key = world.tenants["acme"].keys["admin"]
    assert world.call(a_key, "GET", "/domains/agency1-0.example").status_code == 404


def _normalised(engine, tenant: str, home: str) -> tuple[list, Counter]:
    from penguinctl.state.models import AuditEvent, ResourceRow

    r, a = ResourceRow.__table__, AuditEvent.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.kind, r.c.name, r.c.provider, r.c.status, r.c.data)
            .where(r.c.tenant == tenant)
            .order_by(r.c.kind, r.c.name)
        ).all()
        audit = conn.execute(
            sa.select(a.c.action, a.c.resource, a.c.result).where(a.c.tenant == tenant)
        ).all()
    state = []
    for kind, name, provider, status, data in rows:
        data = {
            k: v
            for k, v in (data or {}).items()
            if k not in ("public_key", "directory") and not k.endswith(("_since", "_at"))
        }
        if kind == "dnsrecord" and "_domainkey" in name:
            data.pop("values", None)
        state.append((kind, name, provider, status, json.dumps(data, sort_keys=True)))
    events = Counter(
        (x, "lock/*" if y.startswith("lock/") else y, z)
        for x, y, z in audit
        if not x.startswith("apikey.")
    )
    return state, events


def test_api_and_cli_give_the_same_state(world, tmp_path) -> None:
    spec = tmp_path / "initech.yaml"
    spec.write_text(tenant_spec("initech", 2))
    # through the API (client mode, a tenant admin key)
    key = world.new_key("initech", "admin")
    done = cli(client_env(world, key["token"], tmp_path), "apply", "-f", str(spec), "--yes")
    assert done.returncode == 0, done.stderr
    # through the CLI, on a state store of its own
    home = tmp_path / "cli-home"
    local = {"PENGUINCTL_HOME": str(home), "PENGUINCTL_STATE": f"sqlite:///{tmp_path / 'cli.db'}"}
    done = cli(local, "apply", "-f", str(spec), "--yes")
    assert done.returncode == 0, done.stderr

    from penguinctl.state.db import make_engine

    served, mine = (
        make_engine(world.env["PENGUINCTL_STATE"]),
        make_engine(local["PENGUINCTL_STATE"]),
    )
    try:
        api_state, api_audit = _normalised(served, "initech", world.env["PENGUINCTL_HOME"])
        cli_state, cli_audit = _normalised(mine, "initech", str(home))
        assert api_state == cli_state
        assert api_audit == cli_audit and sum(api_audit.values()) > 5
        from penguinctl.state.models import AuditEvent

        a = AuditEvent.__table__
        with served.connect() as conn:
            mine_only = sa.and_(a.c.tenant == "initech", ~a.c.action.startswith("apikey."))
            actors = set(conn.execute(sa.select(a.c.actor).where(mine_only)).scalars())
        assert actors == {f"key:{key['id']}"}
    finally:
        served.dispose()
        mine.dispose()


@pytest.mark.slow
def test_schemathesis(world, tmp_path) -> None:
    """Schemathesis against the live server with a platform admin key: no 5xx, and every
    response conforms to the OpenAPI document (a bounded number of examples)."""
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        st = str(Path(sys.executable).with_name("st"))
    token = world.platform["admin"]["token"]
    done = subprocess.run(
        [
            st, "run", f"{world.api}/openapi.json",
            "--url", world.api,
            "-H", f"Authorization: Bearer {token}",
            "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples", "4",
            "--phases", "examples,fuzzing",
            "--request-timeout", "20",
            "--max-time", "100",
            "--suppress-health-check", "all",
            "--seed", "21",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,  # its cache directory goes there, not into the work tree
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )  # fmt: skip
    (tmp_path / "schemathesis.log").write_text(done.stdout + done.stderr)
    shown = "\n".join(line[:300] for line in (done.stdout + done.stderr).splitlines()[-150:])
    assert done.returncode == 0, shown
