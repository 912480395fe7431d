"""The jobs the control plane knows: name, scope, what it does and the function that runs it.

A job is a plain function ``run(ctx: JobContext) -> dict`` (its summary); the scheduler and
``penguinctl jobs run`` both call it through ``runs.execute``. It raises a ``PenguinError`` (or
``JobFailed``, carrying a summary) when it fails. Functions are named as ``"module:function"``
strings and imported only when a job runs, so listing jobs imports none of them.

Contract for a job function:
- it reads the state store and the recorded specs of ``ctx.tenant`` only (tenant jobs), never
  another tenant's;
- it calls the same service functions as the CLI command it stands for, never a copy;
- it checks ``ctx.cancelled`` between units of work (servers, domains) and stops early when set
  (the run's timeout passed, or serve is shutting down);
- it is idempotent: a run killed at any point and run again converges.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from penguinctl.errors import PenguinError


class JobFailed(PenguinError):
    """A run that did part of its work and failed the rest; ``summary`` is recorded."""

    def __init__(self, message: str, *, summary: dict[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.summary = summary


class JobSkipped(PenguinError):
    """Nothing to do by design (e.g. Stripe not configured): the run is recorded ``skipped``."""


@dataclass(frozen=True)
class Job:
    name: str
    scope: str  # platform | tenant
    about: str
    ref: str  # "module:function"
    per_policy: bool = False  # one series per BackupPolicy schedule (backup)
    # jobs of one group never run at once for a tenant (a backup and a restore drill would
    # fight over the repository's lock)
    group: str | None = None

    def function(self) -> Callable[[Any], dict[str, Any]]:
        module, _, attr = self.ref.partition(":")
        return getattr(importlib.import_module(module), attr)


_J = "penguinctl.control.jobs"
JOBS: dict[str, Job] = {
    j.name: j
    for j in (
        Job(
            "dkim-rotate",
            "tenant",
            "start and advance DKIM rotations that are due",
            f"{_J}.dkim:run",
        ),
        Job(
            "secrets-rotate",
            "tenant",
            "rotate SSH keys and mailbox passwords that are due",
            f"{_J}.secrets:run",
        ),
        Job(
            "check",
            "tenant",
            "health and reputation checks; pause campaigns on a listing",
            f"{_J}.check:run",
        ),
        Job(
            "backup",
            "tenant",
            "back up the servers of a BackupPolicy, on its schedule",
            f"{_J}.backup:run_backup",
            per_policy=True,
            group="restic",
        ),
        Job(
            "backup-verify",
            "tenant",
            "restore drill: restic check and sample restore by sha256",
            f"{_J}.backup:run_verify",
            group="restic",
        ),
        Job(
            "drift",
            "tenant",
            "plan the tenant from its recorded spec; report drift, apply none",
            f"{_J}.drift:run",
        ),
        Job("backup-state", "platform", "back up the state store", f"{_J}.backup:run_state"),
        Job(
            "billing-run",
            "platform",
            "invoice the previous month (once)",
            f"{_J}.billing:run_invoices",
        ),
        Job(
            "billing-sync",
            "platform",
            "push invoices to Stripe and bring back their status",
            f"{_J}.billing:run_sync",
        ),
        Job(
            "billing-alerts",
            "platform",
            "80%/100% usage and budget warnings",
            f"{_J}.billing:run_alerts",
        ),
        Job(
            "dunning",
            "platform",
            "retry failed payments; suspend after the last retry",
            f"{_J}.billing:run_dunning",
        ),
        Job(
            "campaign-settle",
            "tenant",
            "settle ambiguous sends by asking the sending MTA (its log, or a Sent folder)",
            f"{_J}.settle:run",
        ),
    )
}
WORKER = "worker"  # the campaign worker (serve --with-worker): not a scheduled job


def get(name: str) -> Job:
    from penguinctl.errors import UsageError

    job = JOBS.get(name)
    if job is None:
        raise UsageError(f"no job named {name!r}", hint=f"jobs: {', '.join(sorted(JOBS))}")
    return job
