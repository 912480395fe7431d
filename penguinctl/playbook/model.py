"""What a playbook file holds (pydantic, unknown fields rejected) and what running one returns.

A step names exactly one operation: its key (``directory``, ``file``, ...) selects the class in
``penguinctl.playbook.ops`` and its value is that class's ``Params``. Strings in params may hold
Jinja2 expressions; they are rendered at run time, so params are validated twice: their shape at
load time, their rendered values at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from penguinctl.errors import Location

_MODE = re.compile(r"0?[0-7]{3,4}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _mode(value: str) -> str:
    if "{{" in value:
        return value
    if not _MODE.fullmatch(value):
        raise ValueError("mode must be octal, quoted: '0644'")
    return value


Mode = Annotated[str, AfterValidator(_mode)]


def mode_bits(value: str) -> int:
    """``"0644"`` -> 0o644 (after rendering; ``ValueError`` if not octal)."""
    if not _MODE.fullmatch(value):
        raise ValueError(f"mode {value!r} is not octal like '0644'")
    return int(value, 8)


class _Owned(Strict):
    owner: str | None = None
    group: str | None = None


class DirectoryParams(_Owned):
    path: str
    mode: Mode | None = "0755"


class PackageParams(Strict):
    names: list[str] = Field(min_length=1)
    update: bool = False  # `apt-get update` before installing missing packages


class FileParams(_Owned):
    path: str
    template: str | None = None
    content: str | None = None
    mode: Mode | None = "0644"
    secret: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> FileParams:
        if (self.template is None) == (self.content is None):
            raise ValueError("give exactly one of 'template' or 'content'")
        return self


class LineParams(Strict):
    path: str
    line: str
    regexp: str | None = None  # Python regular expression; the last matching line is replaced
    mode: Mode | None = "0644"  # only when the file is created


class CommandParams(Strict):
    run: list[str] = Field(min_length=1)
    creates: str | None = None
    unless: str | list[str] | None = None
    timeout: float | None = None


class ComposeUpParams(Strict):
    project_dir: str
    project: str
    file: str = "docker-compose.yml"
    env_file: str | None = None  # hashed with the compose file (e.g. mailu.env)
    timeout: float = 900.0


class WaitUrlParams(Strict):
    url: str
    status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    timeout: float = 120.0
    interval: float = 2.0
    insecure: bool = False  # curl -k (a self-signed certificate during bootstrap)


OPERATIONS: dict[str, type[Strict]] = {
    "package": PackageParams,
    "directory": DirectoryParams,
    "file": FileParams,
    "line": LineParams,
    "command": CommandParams,
    "compose_up": ComposeUpParams,
    "wait_url": WaitUrlParams,
}


class Step(Strict):
    name: str
    when: str | bool | None = None
    package: PackageParams | None = None
    directory: DirectoryParams | None = None
    file: FileParams | None = None
    line: LineParams | None = None
    command: CommandParams | None = None
    compose_up: ComposeUpParams | None = None
    wait_url: WaitUrlParams | None = None

    @model_validator(mode="after")
    def _one_operation(self) -> Step:
        given = [op for op in OPERATIONS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a step names exactly one operation ({', '.join(OPERATIONS)}); "
                f"this one has {len(given) or 'none'}"
            )
        return self

    @property
    def op(self) -> str:
        return next(op for op in OPERATIONS if getattr(self, op) is not None)

    @property
    def params(self) -> Strict:
        return getattr(self, self.op)


class PlaybookDoc(Strict):
    name: str
    description: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


@dataclass(frozen=True)
class Playbook:
    """A validated playbook and where it came from (``locations[i]`` is where step i starts)."""

    doc: PlaybookDoc
    source: str
    locations: tuple[Location, ...] = ()

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def steps(self) -> list[Step]:
        return self.doc.steps

    def location(self, index: int) -> Location:
        return self.locations[index] if index < len(self.locations) else Location(self.source)


Status = Literal["ok", "changed", "failed"]


@dataclass
class StepResult:
    """One step on one host. ``diff`` is a unified diff (masked) for a file step that changed
    or would change; None for a secret file ("content hidden" in ``detail``) and other ops."""

    name: str
    op: str
    status: Status
    diff: str | None = None
    detail: str = ""
    duration: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "status": self.status,
            "detail": self.detail,
            "diff": self.diff,
            "duration": round(self.duration, 3),
        }


@dataclass
class PlaybookResult:
    host: str
    steps: list[StepResult] = field(default_factory=list)
    check: bool = False

    @property
    def changed(self) -> bool:
        return any(s.status == "changed" for s in self.steps)

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "check": self.check,
            "changed": self.changed,
            "steps": [s.to_json() for s in self.steps],
        }
