"""Where a server's restic repository is and how it is opened.

The repository comes from the server's BackupPolicy (``repository``), with ``{server}``
replaced by the server's name; without one it is local disk on the server itself
(``DEFAULT_REPOSITORY``). Supported locations are restic's: a local path (``/srv/restic`` or
``local:/srv/restic``), ``sftp:user@host:/path`` (the server's own SSH configuration reaches the
SFTP host) and ``s3:https://endpoint/bucket/prefix``.

The repository password lives in the secrets backend at ``tenants/<tenant>/backups/<server>``
(``platform/backups/<server>`` for a server of no tenant; field
``password``), generated on first use; S3 keys, when the repository needs them, are the fields
``aws_access_key_id`` and ``aws_secret_access_key`` of the same secret. Values are revealed only
to be sent on the SSH channel's stdin.
"""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from penguinctl.errors import SecretError, UsageError
from penguinctl.spec.names import REPOSITORY_SCHEMES as _SCHEMES

DEFAULT_REPOSITORY = "/var/backups/penguinctl/restic"
_S3_FIELDS = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_default_region": "AWS_DEFAULT_REGION",
}


def secret_path(tenant: str | None, server: str) -> str:
    """Where ``server``'s repository password lives (``secret_paths.backup_password_path``)."""
    from penguinctl.secret_paths import backup_password_path

    return backup_password_path(tenant, server)


def resolve(template: str | None, server: str) -> str:
    """The repository URL for ``server``; raises ``UsageError`` for an unknown kind."""
    repo = (template or DEFAULT_REPOSITORY).replace("{server}", server).strip()
    if repo.startswith("/") or repo.startswith(_SCHEMES):
        return repo
    raise UsageError(
        f"backup repository {repo!r} of server {server} is not a path or a restic URL",
        hint="use /path (local disk on the server), sftp:user@host:/path or s3:https://host/bucket",
    )


def kind_of(repo: str) -> str:
    if repo.startswith("/"):
        return "local"
    return repo.split(":", 1)[0]


def credentials(
    secrets: Any, server: str, repo: str, *, tenant: str | None, create: bool
) -> tuple[dict[str, str], bool]:
    """Environment for restic (``RESTIC_PASSWORD`` and S3 keys) and whether the password was
    generated now. Without ``create`` a missing password is an error (restore, verify)."""
    path = secret_path(tenant, server)
    fields = secrets.get(path) or {}
    created = False
    if "password" not in fields:
        if not create:
            raise SecretError(
                f"no restic repository password at {path} in the secrets backend",
                hint="back the server up first, or restore the password from where you keep it",
            )
        password = pysecrets.token_urlsafe(32)
        secrets.put(path, {**{k: v.reveal() for k, v in fields.items()}, "password": password})
        fields = secrets.get(path) or {}
        created = True
    env = {"RESTIC_PASSWORD": fields["password"].reveal()}
    if kind_of(repo) == "sftp":
        from penguinctl.backup.sftp import environment

        env.update(environment(fields, repo))
    if kind_of(repo) == "s3":
        for field, var in _S3_FIELDS.items():
            if field in fields:
                env[var] = fields[field].reveal()
        if "AWS_ACCESS_KEY_ID" not in env:
            raise SecretError(
                f"repository {repo} is on S3 but {path} holds no aws_access_key_id",
                hint=f"penguinctl secrets put {path} aws_access_key_id=... "
                "aws_secret_access_key=...",
            )
    return env, created
