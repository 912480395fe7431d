"""Where penguinctl's shipped files are, and the operator's copies that override them.

The source of truth is the repository's top level: ``config/`` (plans.yaml, schedules.yaml,
dnsbl.yaml), ``playbooks/`` (mailu, example) and ``templates/`` (MailU, example, invoice).
They ship in two ways:

- a wheel (``pip install .``): the build hook in ``setup.py`` copies them into the package as
  ``penguinctl/_shipped/{config,playbooks,templates}``;
- an editable install or a checkout (``pip install -e .``): they are read where they are, at the
  top of the checkout next to ``penguinctl/`` (edits show at once).

An operator overrides any of them file by file: ``<config dir>/config/NAME``,
``<config dir>/playbooks/NAME``, ``<config dir>/templates/NAME`` win over the shipped file of the
same name (the config dir is ``PENGUINCTL_HOME`` when set, else the project directory
``.penguinctl`` or ``$XDG_CONFIG_HOME/penguinctl``; see ``penguinctl.settings``). An override
replaces the shipped file whole; nothing is merged.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

Kind = Literal["config", "playbooks", "templates"]
M = TypeVar("M", bound="BaseModel")
KINDS: tuple[Kind, ...] = ("config", "playbooks", "templates")
PACKAGE = Path(__file__).resolve().parent
IN_WHEEL = "_shipped"  # the directory inside the installed package (see setup.py)


@functools.cache
def root() -> Path:
    """The directory that holds the shipped ``config/``, ``playbooks/`` and ``templates/``."""
    inside = PACKAGE / IN_WHEEL
    if (inside / "config").is_dir():
        return inside
    checkout = PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "config").is_dir():
        return checkout
    from penguinctl.errors import ConfigError

    raise ConfigError(
        f"penguinctl's shipped files are missing (neither {inside} nor {checkout / 'config'})",
        hint="reinstall penguinctl (pip install penguinctl, or pip install -e . in a checkout)",
    )


def shipped_dir(kind: Kind) -> Path:
    """The shipped directory of one kind (``root()/kind``)."""
    return root() / kind


def shipped_path(kind: Kind, name: str) -> Path:
    """The shipped file ``name`` (a relative path) of one kind, whether or not it exists."""
    return shipped_dir(kind) / name


def operator_dir(kind: Kind, env: Mapping[str, str] | None = None) -> Path:
    """The operator's override directory of one kind (it need not exist)."""
    from penguinctl.settings import home_dirs

    return home_dirs(os.environ if env is None else env)[0] / kind


def search_dirs(kind: Kind, env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where files of one kind are looked up, first match wins: the operator's, the shipped."""
    return (operator_dir(kind, env), shipped_dir(kind))


def find(kind: Kind, name: str, env: Mapping[str, str] | None = None) -> Path:
    """The file ``name`` of one kind: the operator's copy if there is one, else the shipped one
    (returned even when it does not exist, so the caller's error names the shipped path)."""
    override = operator_dir(kind, env) / name
    return override if override.is_file() else shipped_path(kind, name)


def names(kind: Kind, pattern: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Names matching ``pattern`` (a glob) in the operator's and the shipped directory."""
    found = {p.name for d in search_dirs(kind, env) if d.is_dir() for p in d.glob(pattern)}
    return sorted(found)


def is_shipped(path: Path) -> bool:
    """Whether ``path`` is one of penguinctl's shipped files (not an operator's copy)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(shipped_dir(kind)) for kind in KINDS)


def load_model(
    path: Path,
    model: type[M],
    *,
    what: str,
    hint: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> M:
    """The YAML file at ``path`` validated by the pydantic ``model`` (``extra`` keys added to the
    document); unreadable, invalid YAML or invalid content is a one-line ``ConfigError`` naming
    the file (``what`` says what it is, ``hint`` how to fix an unreadable one)."""
    import yaml
    from pydantic import ValidationError

    from penguinctl.errors import ConfigError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict | None):
            raise ConfigError(f"{path}: {what} must be a mapping", hint=hint)
        return model.model_validate({**(data or {}), **(extra or {})})
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}", hint=hint) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
