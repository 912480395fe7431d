"""Listing and rotating credentials: what ``secrets rotate`` and the ``secrets-rotate`` job both
call. Kind by kind, target by target: one failure is recorded and the others go on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from penguinctl.secret_rotation import registry
from penguinctl.secret_rotation.base import RotationContext


@dataclass
class Collected:
    rotations: dict[str, Any] = field(default_factory=dict)
    items: list[Any] = field(default_factory=list)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)  # (kind, error)
    skipped: list[str] = field(default_factory=list)  # kinds whose module is not installed


def collect(rctx: RotationContext, kinds: Sequence[str], *, tenant: str | None = None) -> Collected:
    """Every managed credential of ``kinds`` (of ``tenant`` only, when given)."""
    out = Collected()
    for name in kinds:
        try:
            cls = registry.load(name)
            if cls is None:
                out.skipped.append(name)
                continue
            rotation = cls(rctx)
            found = rotation.candidates()
        except Exception as exc:  # one broken kind must not stop the others
            out.failures.append((name, exc))
            continue
        out.rotations[name] = rotation
        found = [i for i in found if tenant is None or i.tenant == tenant]
        out.items += sorted(found, key=lambda i: (i.target, i.path))
    return out


def rotate_items(
    rotations: dict[str, Any],
    items: Sequence[Any],
    *,
    reason: Callable[[BaseException], str],
    advance: Callable[[], None] = lambda: None,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rotate ``items``; returns (results, audit events)."""
    results: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for item in items:
        if cancelled():
            break
        entry: dict[str, Any] = {"kind": item.kind, "target": item.target, "path": item.path}
        try:
            summary = rotations[item.kind].rotate(item)
        except Exception as exc:  # one broken target must not stop the others
            entry.update(result="failed", error=reason(exc))
        else:
            entry.update(result="rotated", summary=summary)
        results.append(entry)
        events.append(
            {
                "action": "secret.rotate",
                "path": item.path,
                "result": "ok" if entry["result"] == "rotated" else "error",
                "tenant": item.tenant,
                "details": {
                    "kind": item.kind,
                    "target": item.target,
                    **({"summary": entry["summary"]} if "summary" in entry else {}),
                    **({"error": entry["error"]} if "error" in entry else {}),
                },
            }
        )
        advance()
    return results, events
