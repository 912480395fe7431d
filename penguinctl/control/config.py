"""``config/schedules.yaml``: the jobs ``serve`` runs, their default schedules and timeouts.

Lookup: ``PENGUINCTL_SCHEDULES`` (a file), ``<config dir>/config/schedules.yaml`` (the
operator's copy, which replaces the shipped one whole), then the shipped ``config/schedules.yaml``
(``penguinctl.shipped``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from penguinctl.spec.cron import check_cron
from penguinctl.spec.durations import Duration

Cron = Annotated[str, AfterValidator(check_cron)]


def shipped_path(name: str) -> Path:
    """A file of the ``config/`` directory shipped with penguinctl (see ``penguinctl.shipped``)."""
    from penguinctl import shipped

    return shipped.shipped_path("config", name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobConfig(_Strict):
    scope: Literal["platform", "tenant"]
    schedule: Cron
    timeout: Duration = Duration("1h")
    enabled: bool = True
    # an operator's own job: "module:function" taking a JobContext (see control.registry)
    run: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] | None = None
    about: str | None = None


class Backoff(_Strict):
    base: Duration = Duration("5m")
    max: Duration = Duration("6h")

    def after(self, failures: int) -> timedelta:
        """How long a series waits after ``failures`` consecutive failures."""
        if failures <= 0:
            return timedelta(0)
        return min(self.max, self.base * (2 ** min(failures - 1, 30)))


class Schedules(_Strict):
    apiVersion: Literal["penguinctl/v1"]
    kind: Literal["Schedules"]
    jobs: dict[str, JobConfig] = Field(min_length=1)
    backup_freshness_grace: Duration = Duration("3h")
    backoff: Backoff = Field(default_factory=Backoff)
    source: str = ""

    def job(self, name: str) -> Any:
        """The job called ``name``: a built-in one, or one this file defines with ``run``."""
        from penguinctl.control.registry import JOBS, Job, get

        if name in JOBS:
            return JOBS[name]
        custom = self.jobs.get(name)
        if custom is not None and custom.run:
            return Job(name, custom.scope, custom.about or f"runs {custom.run}", custom.run)
        return get(name)

    def known(self, name: str) -> bool:
        from penguinctl.control.registry import JOBS

        return name in JOBS or bool(self.jobs.get(name) and self.jobs[name].run)


def schedules_path(env: Mapping[str, str]) -> Path:
    from penguinctl import shipped

    explicit = env.get("PENGUINCTL_SCHEDULES")
    if explicit:
        return Path(explicit).expanduser()
    return shipped.find("config", "schedules.yaml", env)


def load_schedules(env: Mapping[str, str], path: Path | None = None) -> Schedules:
    """The schedules in force; a ``ConfigError`` (one line, with the file) when invalid."""
    from penguinctl import shipped
    from penguinctl.control.registry import JOBS
    from penguinctl.errors import ConfigError

    path = path or schedules_path(env)
    config = shipped.load_model(
        path,
        Schedules,
        what="the schedules file",
        hint="fix PENGUINCTL_SCHEDULES or copy config/schedules.yaml there",
        extra={"source": str(path)},
    )
    unknown = sorted(n for n, j in config.jobs.items() if n not in JOBS and not j.run)
    if unknown:
        raise ConfigError(
            f"{path}: unknown job {', '.join(unknown)}",
            hint=f"jobs: {', '.join(sorted(JOBS))}; your own job needs run: MODULE:FUNCTION",
        )
    for name, job in config.jobs.items():
        if name in JOBS and job.scope != JOBS[name].scope:
            raise ConfigError(f"{path}: jobs.{name}.scope must be {JOBS[name].scope}")
        if name in JOBS and job.run:
            raise ConfigError(f"{path}: jobs.{name}: a built-in job takes no run:")
    return config
