"""Rendering step parameters and templates with sandboxed Jinja2 (``StrictUndefined``: a missing
variable is an error, never an empty string).

Templates are looked up first in the run's extra templates directory (if any), then in the
operator's ``<config dir>/templates/``, then in the shipped ``templates/`` (``penguinctl.shipped``).
A variable holding a ``SecretValue`` is revealed for rendering, which registers it with
``penguinctl.masking`` so diffs and messages mask it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from penguinctl import shipped
from penguinctl.errors import PenguinError

_FALSE = {"", "false", "no", "off", "0", "none"}


class RenderError(PenguinError):
    """A template or parameter could not be rendered (undefined variable, syntax error, missing
    template). Exit code 3: the playbook or its variables need fixing."""

    from penguinctl.errors import ExitCode

    exit_code = ExitCode.SPEC_INVALID


def search_path(templates_dir: Path | None = None) -> tuple[str, ...]:
    """Where templates are looked up, first match wins. Only existing directories: an
    environment caches what it loaded, so a new override directory makes a new environment."""
    extra = (str(templates_dir),) if templates_dir is not None else ()
    dirs = shipped.search_dirs("templates")
    return extra + tuple(str(d) for d in dirs if d == dirs[-1] or d.is_dir())


def environment(templates_dir: Path | None = None) -> Any:
    """The sandboxed environment for a run's extra templates directory (if any)."""
    return _environment(search_path(templates_dir))


@functools.lru_cache(maxsize=16)
def _environment(search: tuple[str, ...]) -> Any:
    """One sandboxed environment per search path (built on first use, not at import)."""
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(list(search)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, templates_dir: Path | None) -> Any:
    """A step string compiled once per process (compiling costs far more than rendering, and a
    fan-out renders the same strings for every host)."""
    return environment(templates_dir).from_string(text)


def _plain(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.reveal() if hasattr(v, "reveal") else v) for k, v in variables.items()}


def _error(what: str, exc: Exception) -> RenderError:
    from penguinctl.masking import mask

    text = mask(" ".join(str(exc).split()))
    return RenderError(f"cannot render {what}: {text}", hint="check the playbook's variables")


def render_string(
    text: str, variables: Mapping[str, Any], templates_dir: Path | None = None
) -> str:
    """``text`` rendered (returned as is when it holds no Jinja2 syntax)."""
    if "{" not in text:
        return text
    try:
        return _compiled(text, templates_dir).render(_plain(variables))
    except Exception as exc:
        raise _error(repr(text[:60]), exc) from None


def render_value(
    value: Any, variables: Mapping[str, Any], templates_dir: Path | None = None
) -> Any:
    """Every string inside ``value`` (dicts and lists walked) rendered."""
    if isinstance(value, str):
        return render_string(value, variables, templates_dir)
    if isinstance(value, dict):
        return {k: render_value(v, variables, templates_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, variables, templates_dir) for v in value]
    return value


def render_template(
    name: str, variables: Mapping[str, Any], templates_dir: Path | None = None
) -> bytes:
    """Template ``name`` (relative to the templates directories) rendered to UTF-8 bytes."""
    from jinja2 import TemplateNotFound

    search = search_path(templates_dir)
    try:
        template = _environment(search).get_template(name)
    except TemplateNotFound:
        raise RenderError(f"template {name!r} not found in {' or '.join(search)}") from None
    except Exception as exc:
        raise _error(f"template {name!r}", exc) from None
    try:
        return template.render(_plain(variables)).encode("utf-8")
    except Exception as exc:
        raise _error(f"template {name!r}", exc) from None


def truthy(value: Any) -> bool:
    """A rendered ``when``: false for false/no/off/0/none/empty (any case), else true."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in _FALSE


def render_file(
    step_or_template: Any, variables: Mapping[str, Any], templates_dir: Path | None = None
) -> bytes:
    """What a file step would write: ``step_or_template`` is a ``Step`` with a ``file`` op, its
    ``FileParams``, or a template name."""
    params = getattr(step_or_template, "file", step_or_template)
    if isinstance(params, str):
        return render_template(params, variables, templates_dir)
    if params.template is not None:
        name = render_string(params.template, variables, templates_dir)
        return render_template(name, variables, templates_dir)
    return render_string(params.content or "", variables, templates_dir).encode("utf-8")
