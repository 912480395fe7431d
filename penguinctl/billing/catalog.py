"""The plan catalog: ``plans.yaml`` shipped with the package, or the operator's copy.

Lookup order: ``PENGUINCTL_PLANS`` (a file), ``<config dir>/config/plans.yaml`` (with
``PENGUINCTL_HOME`` set, the config dir is that directory), then the shipped
``config/plans.yaml`` (``penguinctl.shipped``). The whole file replaces the shipped one (no
merging), so what is billed is exactly what the file says. Validated with pydantic; an invalid
catalog is a :class:`ConfigError` naming the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from penguinctl import shipped
from penguinctl.errors import ConfigError

PACKAGED = shipped.shipped_path("config", "plans.yaml")
Cents = Annotated[int, Field(ge=0, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddonPrices(_Strict):
    dedicated_ip: Cents
    extra_workspace: Cents
    extra_emails: Cents
    extra_emails_block: Annotated[int, Field(gt=0, strict=True)] = 10_000


class Limits(_Strict):
    """Most of each thing a tenant on the plan may have; None is unlimited."""

    domains: Annotated[int, Field(ge=0)] | None = None
    mailboxes: Annotated[int, Field(ge=0)] | None = None
    workspaces: Annotated[int, Field(ge=0)] | None = None
    users: Annotated[int, Field(ge=0)] | None = None


class PlanVersion(_Strict):
    version: Annotated[int, Field(ge=1)]
    effective_from: date
    monthly_price: Cents | None  # None: custom price, cannot be billed from the catalog
    included_emails: Annotated[int, Field(ge=0)] | None  # None: unlimited
    included_dedicated_ips: Annotated[int, Field(ge=0)] = 0
    addons: AddonPrices | None = None  # overrides the catalog's add-on prices


class Plan(_Strict):
    name: str
    purchasable: bool = True
    limits: Limits = Field(default_factory=Limits)
    versions: list[PlanVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Plan:
        numbers = [v.version for v in self.versions]
        if len(set(numbers)) != len(numbers):
            raise ValueError("version numbers must be unique")
        starts = [v.effective_from for v in sorted(self.versions, key=lambda v: v.version)]
        if starts != sorted(starts):
            raise ValueError("a later version must not start before an earlier one")
        return self

    def current(self, on: date) -> PlanVersion:
        """The version new tenants get on ``on`` (the first version if none has started)."""
        started = [v for v in self.versions if v.effective_from <= on]
        return max(started or self.versions[:1], key=lambda v: v.version)

    def get_version(self, number: int) -> PlanVersion | None:
        return next((v for v in self.versions if v.version == number), None)


class Catalog(_Strict):
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] = "usd"
    addons: AddonPrices
    plans: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], Plan] = Field(min_length=1)
    source: str = ""

    def plan(self, name: str) -> Plan:
        try:
            return self.plans[name]
        except KeyError:
            raise ConfigError(
                f"plan {name!r} is not in the plan catalog {self.source}",
                hint=f"known plans: {', '.join(sorted(self.plans))}",
            ) from None

    def version(self, name: str, number: int | None, *, on: date) -> PlanVersion:
        """A tenant's pinned version of plan ``name``; without a pin, the version current on
        ``on`` (the day the tenant was put on the plan)."""
        plan = self.plan(name)
        if number is not None:
            found = plan.get_version(number)
            if found is None:
                raise ConfigError(
                    f"plan {name!r} has no version {number} in {self.source}",
                    hint="tenants keep their version: do not remove versions still in use",
                )
            return found
        return plan.current(on)

    def addons_for(self, version: PlanVersion) -> AddonPrices:
        return version.addons or self.addons


def catalog_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("PENGUINCTL_PLANS")
    if explicit:
        return Path(explicit).expanduser()
    return shipped.find("config", "plans.yaml", env)


def load_catalog(env: Mapping[str, str] | None = None, path: Path | None = None) -> Catalog:
    import yaml

    path = path or catalog_path(env)
    try:
        # libyaml's loader when PyYAML has it (10x faster; same safe subset)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except OSError as exc:
        raise ConfigError(
            f"plan catalog {path}: cannot read ({exc.strerror or exc})",
            hint="fix PENGUINCTL_PLANS or the file's permissions",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"plan catalog {where}: invalid YAML", hint="fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"plan catalog {path}: must be a mapping", hint="see the packaged one")
    try:
        return Catalog.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(
            f"plan catalog {path}: {where}: {first['msg']}{more}",
            hint=f"compare with the shipped {PACKAGED}",
        ) from None
