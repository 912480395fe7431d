"""Saved plans: `plan --out FILE` writes one, `apply --plan FILE` applies it only if unchanged.

A plan file is JSON of one shape (:class:`PlanFile`, format ``penguinctl-plan/v1``). Reading one
checks that shape before anything uses it: a file that is not JSON, too large or too deeply
nested, or that has a field missing, of the wrong type or unknown, is a usage error (exit 2)
naming the file and the first thing wrong, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from penguinctl.errors import UsageError
from penguinctl.plan.plan import Plan

FORMAT = "penguinctl-plan/v1"
MAX_BYTES = 256 * 1024 * 1024  # a 10,000-domain plan is a few tens of MB


class PlanFile(BaseModel):
    """What ``plan --out`` writes: the spec files, the plan's data and its checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["penguinctl-plan/v1"]
    specs: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    operation: Literal["apply", "destroy"]
    tenants: list[str]
    changes: list[dict[str, Any]]
    counts: dict[str, Annotated[int, Field(ge=0)]]
    checksum: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    warnings: list[str]


def save(path: Path, plan: Plan, *, spec_paths: list[str]) -> None:
    doc = {"format": FORMAT, "specs": spec_paths, **plan.to_json()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def load(path: Path) -> PlanFile:
    """The plan saved at ``path``; raises ``UsageError`` (one line) when it is not one."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UsageError(
                f"plan file {path} is {size} bytes, over the {MAX_BYTES} byte limit",
                hint="is it a plan written by `plan --out`?",
            )
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(
            f"plan file {path} does not exist", hint="write one with `plan --out`"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"plan file {path} is not a penguinctl plan (invalid JSON)") from None
    except RecursionError:
        raise UsageError(f"plan file {path} is not a penguinctl plan (nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"plan file {path} is not a penguinctl plan ({FORMAT})")
    try:
        return PlanFile.model_validate(doc)
    except ValidationError as exc:
        raise UsageError(
            f"plan file {path} is malformed: {_first_problem(exc)}",
            hint="write it again with `penguinctl plan --out FILE`",
        ) from None
    except RecursionError:
        raise UsageError(f"plan file {path} is not a penguinctl plan (nested too deeply)") from None
