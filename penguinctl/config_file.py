"""The config file: ``config.yaml`` in the config dir (``.penguinctl/config.yaml`` in a project).

```yaml
state: postgresql://ops@db.internal/penguinctl   # state store URL (flag and env win over it)
secrets: vault                                   # keystore (default) or vault
dns:
  zones_dir: zones        # zonefile providers without a directory; relative to this file
  resolvers: [192.0.2.53] # recursive resolvers for dns verify, dkim status, check
```

Every key is optional; an unknown key or a wrong type is an error at ``FILE:LINE:COL``. Read only
when the file exists (imported lazily by ``penguinctl.settings``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_CONFIG_BYTES = 1024 * 1024


class DnsDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zones_dir: str | None = Field(None, max_length=4096)
    resolvers: list[str] = Field(default_factory=list, max_length=16)

    @field_validator("resolvers")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item or len(item) > 300 or any(c.isspace() for c in item):
                raise ValueError(f"{item!r} is not HOST or HOST:PORT")
        return value


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str | None = Field(None, max_length=4096)
    secrets: str | None = Field(None, max_length=32)
    dns: DnsDefaults = Field(default_factory=DnsDefaults)


def read_config_file(path: Path) -> ConfigFile:
    """Parse and validate ``path``; every problem is a ``ConfigError`` naming ``FILE:LINE:COL``."""
    from penguinctl.errors import ConfigError, Location
    from penguinctl.spec.loader import parse_bytes
    from penguinctl.spec.source import YamlMap, locate

    hint = "known keys: state, secrets, dns.zones_dir, dns.resolvers"
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the config file is larger than 1 MiB", hint=hint)
    parsed = parse_bytes(str(path), data)
    if parsed.issues:
        issue = parsed.issues[0]
        if issue.message.startswith("a document must be a mapping"):  # the spec reader's words
            raise ConfigError(f"{issue.location}: must be a mapping (key: value lines)", hint=hint)
        raise ConfigError(str(issue), hint=hint)
    if not parsed.documents:
        return ConfigFile()
    if len(parsed.documents) > 1:
        raise ConfigError(f"{path}: one YAML document expected, found several", hint=hint)
    doc = parsed.documents[0]
    if not isinstance(doc, YamlMap):
        raise ConfigError(f"{Location(str(path), 1, 1)}: must be a mapping", hint=hint)
    try:
        return ConfigFile.model_validate(dict(doc))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        where, _ = locate(doc, loc)
        dotted = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {dotted!r}"
        else:
            message = f"{dotted}: {error['msg'].removeprefix('Value error, ')}"
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more)" if more else ""
        raise ConfigError(f"{where}: {message}{suffix}", hint=hint) from None
