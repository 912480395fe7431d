"""The JSON Schema exported for editors (``penguinctl validate --schema``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from daemons import need_module

from penguinctl.spec import json_schema

VALID = Path(__file__).parent / "specs" / "valid" / "acme.yaml"


def _documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(VALID.read_text(encoding="utf-8")) if doc]


def test_schema_structure() -> None:
    schema = json_schema()
    json.dumps(schema)  # plain JSON
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["discriminator"]["propertyName"] == "kind"
    assert sorted(schema["discriminator"]["mapping"]) == [
        "BackupPolicy",
        "DnsProvider",
        "Domain",
        "Schedule",
        "Server",
        "Tenant",
    ]
    defs = schema["$defs"]
    # a tenant's own job schedules: only the per-tenant jobs, each a cron and/or enabled
    jobs = defs["ScheduleSpec"]["properties"]["jobs"]
    assert set(jobs["propertyNames"]["enum"]) == {
        "dkim-rotate", "secrets-rotate", "check", "backup-verify", "drift"
    }  # fmt: skip
    assert set(defs["JobSchedule"]["properties"]) == {"schedule", "enabled"}
    assert defs["Dkim"]["properties"]["rotate_every"]["default"] == "180d"
    assert defs["Dkim"]["additionalProperties"] is False
    assert "pattern" in defs["Mailbox"]["properties"]["password"]["anyOf"][0]
    json_schema()["$defs"].clear()
    assert json_schema()["$defs"]  # callers get a copy


def test_schema_validates_the_example() -> None:
    jsonschema = need_module("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    for document in _documents():
        assert list(validator.iter_errors(document)) == [], document["kind"]


def test_schema_rejects_mistakes() -> None:
    jsonschema = need_module("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    domain = next(doc for doc in _documents() if doc["kind"] == "Domain")
    bad_cases = [
        {**domain, "apiVersion": "penguinctl/v2"},
        {**domain, "spec": {**domain["spec"], "dkim": {"rotate_every": "6 months"}}},
        {**domain, "spec": {**domain["spec"], "mailboxes": [{"local": "x", "password": "pw"}]}},
        {**domain, "spec": {**domain["spec"], "unknown": 1}},
        {**domain, "kind": "Campaign"},
    ]
    for bad in bad_cases:
        assert list(validator.iter_errors(bad)), bad
