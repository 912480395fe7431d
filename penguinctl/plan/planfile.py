"""Saved plans: `plan --out FILE` writes one, `apply --plan FILE` applies it only if unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from penguinctl.errors import UsageError
from penguinctl.plan.plan import Plan

FORMAT = "penguinctl-plan/v1"


def save(path: Path, plan: Plan, *, spec_paths: list[str]) -> None:
    doc = {"format": FORMAT, "specs": spec_paths, **plan.to_json()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"plan file {path} does not exist", hint="write one with `plan --out`"
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"plan file {path} is not a penguinctl plan (invalid JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "checksum" not in doc:
        raise UsageError(f"plan file {path} is not a penguinctl plan ({FORMAT})")
    return doc
