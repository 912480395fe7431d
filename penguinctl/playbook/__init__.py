"""Playbooks: YAML lists of named steps, each an idempotent operation run over SSH.

Public API (the contract other modules build on)::

    load_playbook(name_or_path) -> Playbook
    run_playbook(conn, playbook, variables, *, check=False, sudo=False, templates_dir=None,
                 on_step=None, on_start=None) -> PlaybookResult
    render_file(step_or_params_or_template, variables, templates_dir=None) -> bytes

See ``model`` (format and results), ``facts`` (probes), ``ops`` (operations) and ``runner``.
"""

from penguinctl.playbook.loader import load_playbook
from penguinctl.playbook.model import Playbook, PlaybookResult, Step, StepResult
from penguinctl.playbook.render import RenderError, render_file
from penguinctl.playbook.runner import run_playbook

__all__ = [
    "Playbook",
    "PlaybookResult",
    "RenderError",
    "Step",
    "StepResult",
    "load_playbook",
    "render_file",
    "run_playbook",
]
