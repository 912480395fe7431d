"""Find and validate playbook files; every problem is a ``SpecError`` at ``file:line:col``.

``load_playbook("mailu")`` reads ``mailu.yaml`` from the operator's ``<config dir>/playbooks/`` if
it is there, else the shipped ``playbooks/`` (``penguinctl.shipped``); anything with a ``/`` or a
``.yaml``/``.yml`` suffix is a path. The YAML reader is the spec's (safe, position
aware, duplicate keys refused), so errors point where the spec's errors do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from penguinctl import shipped
from penguinctl.errors import Location, SpecError, SpecIssue
from penguinctl.playbook.model import Playbook, PlaybookDoc

MAX_BYTES = 4 * 1024 * 1024


class PlaybookInvalid(SpecError):
    """A playbook file is unreadable or invalid (exit code 3); carries every issue found."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        super().__init__(issues)
        self.hint = "fix the playbook file"


def available() -> list[str]:
    """Names of the playbooks ``load_playbook`` finds by name (the operator's and the shipped)."""
    return [name.removesuffix(".yaml") for name in shipped.names("playbooks", "*.yaml")]


def is_named(name_or_path: str) -> bool:
    return not ("/" in name_or_path or name_or_path.endswith((".yaml", ".yml")))


def resolve(name_or_path: str) -> Path:
    if not is_named(name_or_path):
        return Path(name_or_path)
    return shipped.find("playbooks", f"{name_or_path}.yaml")


def load_playbook(name_or_path: str) -> Playbook:
    path = resolve(name_or_path)
    shown = str(path) if is_named(name_or_path) else str(name_or_path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        names = ", ".join(available()) or "none"
        raise PlaybookInvalid(
            [SpecIssue(Location(shown), f"no such playbook (playbooks by name: {names})")]
        ) from None
    except OSError as exc:
        issue = SpecIssue(Location(shown), f"cannot read: {exc.strerror}")
        raise PlaybookInvalid([issue]) from None
    if len(data) > MAX_BYTES:
        raise PlaybookInvalid([SpecIssue(Location(shown), "playbook file larger than 4 MiB")])
    return parse_playbook(shown, data)


def parse_playbook(shown: str, data: bytes) -> Playbook:
    from pydantic import ValidationError

    from penguinctl.spec.loader import parse_bytes
    from penguinctl.spec.source import YamlList, YamlMap

    parsed = parse_bytes(shown, data)
    if parsed.issues:
        raise PlaybookInvalid(parsed.issues)
    if len(parsed.documents) != 1:
        found = len(parsed.documents)
        issue = SpecIssue(Location(shown, 1, 1), f"expected one document, found {found}")
        raise PlaybookInvalid([issue])
    raw: YamlMap = parsed.documents[0]
    try:
        doc = PlaybookDoc.model_validate(raw)
    except ValidationError as exc:
        raise PlaybookInvalid([_issue(raw, e) for e in exc.errors(include_url=False)]) from None
    steps = raw.get("steps")
    locations: tuple[Location, ...] = ()
    if isinstance(steps, YamlList):
        locations = tuple(steps.item_location(i) for i in range(len(steps)))
    return Playbook(doc, shown, locations)


def _issue(raw: Any, error: Any) -> SpecIssue:
    from penguinctl.spec.source import locate

    loc = tuple(error["loc"])
    location, found = locate(raw, loc)
    path = ".".join(str(p) for p in found) or "playbook"
    kind, last = error["type"], (loc[-1] if loc else "")
    if kind == "missing":
        message = f"missing required field {last!r}"
    elif kind == "extra_forbidden":
        path = ".".join(str(p) for p in found[:-1]) or "playbook"
        message = f"unknown field {last!r}"
    else:
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if kind == "string_type" and last == "mode":
            message += " (quote a mode: '0644')"
    return SpecIssue(location, f"{path}: {message}")
