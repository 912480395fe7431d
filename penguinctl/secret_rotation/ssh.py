"""Servers' admin SSH keys under the rotation contract: every 90 days, with overlap.

A rotation of ``servers/<server>/ssh`` (fields in ``penguinctl.remote.admin_key``) goes:

1. **generate**: a new key pair is stored as ``next_private_key``/``next_public_key`` next to the
   current one (before the server is touched, so a crash never loses it);
2. **install**: logged in with the current key, the new public key is added to the login user's
   ``authorized_keys``;
3. **promote**: logged in with the *new* key (the proof it works), the secret is rewritten in one
   write: the new key becomes ``private_key``, the old one ``previous_*`` with ``retire_after`` =
   now + overlap (24 h by default; ``PENGUINCTL_SSH_KEY_OVERLAP`` in seconds);
4. **retire** (a later run, once ``retire_after`` has passed): logged in with the new key, the old
   public key is removed from ``authorized_keys``, a login with the old key is tried and must
   fail, then the ``previous_*`` fields are dropped.

Each call does every step that is due and stops at the first that must wait; a re-run after a
crash at any point picks up from what the secret and the server say. Every step is audited (path
and step, never a key).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from penguinctl.errors import ProviderError
from penguinctl.secret_rotation.base import DueItem, Rotation, last_rotated, parse_time

DEFAULT_OVERLAP = timedelta(hours=24)


class SshItem(DueItem):
    pass


class SshKeyRotation(Rotation):
    kind: ClassVar[str] = "ssh"
    default_period: ClassVar[timedelta] = timedelta(days=90)

    @property
    def overlap(self) -> timedelta:
        text = self.ctx.env.get("PENGUINCTL_SSH_KEY_OVERLAP")
        if not text:
            return DEFAULT_OVERLAP
        try:
            return timedelta(seconds=float(text))
        except ValueError:
            from penguinctl.errors import ConfigError

            raise ConfigError(
                f"PENGUINCTL_SSH_KEY_OVERLAP={text!r} is not a number of seconds",
                hint="e.g. 86400 for 24 hours",
            ) from None

    def _servers(self) -> dict[str, tuple[str, dict[str, Any]]]:
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope

        with session_scope(self.ctx.engine) as session:
            rows = repo.list_resources(session, kind="server")
            return {r.name: (r.tenant, dict(r.data or {})) for r in rows if r.status != "pending"}

    def candidates(self) -> list[DueItem]:
        from penguinctl.remote.admin_key import secret_path
        from penguinctl.remote.servers import endpoint_of

        items: list[DueItem] = []
        for name, (tenant, data) in sorted(self._servers().items()):
            path = secret_path(tenant, name)
            fields = self.ctx.secrets.get(path)
            direct = {k: v for k, v in data.items() if k != "ssh"}  # the route is rotate's worry
            if endpoint_of(name, direct) is None or not fields or "private_key" not in fields:
                continue
            last = last_rotated(self.ctx.secrets, path)
            retire = (
                parse_time(fields["retire_after"].reveal()) if "retire_after" in fields else None
            )
            if retire is not None or "next_private_key" in fields:
                # a rotation under way: due when its next step is (now, or at retire_after)
                last = (retire or self.ctx.now()) - self.default_period
            items.append(SshItem(self.kind, name, tenant, path, last, self.default_period))
        return items

    # -- one rotation ------------------------------------------------------------------------
    def rotate(self, item: DueItem) -> str:
        from penguinctl.remote import admin_key

        ctx = self.ctx
        tenant, data = self._servers().get(item.target, ("", {}))
        fields = self._fields(item.path)
        done: list[str] = []
        if "retire_after" in fields:
            retire = parse_time(fields["retire_after"])
            if retire is not None and ctx.now() < retire:
                return f"{item.target}: old key still accepted until {retire.isoformat()} (overlap)"
            self._retire(item, tenant, data, fields)
            return f"{item.target}: old key removed from the server"
        if "next_private_key" not in fields:
            private, public = admin_key.generate(admin_key.key_comment(item.target))
            fields = {**fields, "next_private_key": private, "next_public_key": public}
            ctx.secrets.put(item.path, fields)
            self._audit(tenant, item, "generate")
            done.append("generated")
        with self._connect(item.target, data, fields["private_key"]) as conn:
            admin_key.authorize(conn, fields["next_public_key"])
        self._audit(tenant, item, "install")
        with self._connect(item.target, data, fields["next_private_key"]):
            pass  # the new key logs in: only now may the old one go
        now = ctx.now()
        promoted = {
            "private_key": fields["next_private_key"],
            "public_key": fields["next_public_key"],
            "previous_private_key": fields["private_key"],
            "previous_public_key": fields.get("public_key", ""),
            "retire_after": (now + self.overlap).isoformat(timespec="seconds"),
            "rotated_at": now.isoformat(timespec="seconds"),
        }
        ctx.secrets.put(item.path, promoted)
        self._audit(
            tenant,
            item,
            "promote",
            {"overlap_seconds": self.overlap.total_seconds()},
            rotated=("ssh", item.target, item.path),
        )
        done += ["installed", "verified"]
        if self.overlap <= timedelta(0):
            self._retire(item, tenant, data, promoted)
            done.append("old key removed")
        return f"{item.target}: new admin key {', '.join(done)}"

    def _retire(
        self, item: DueItem, tenant: str, data: dict[str, Any], fields: dict[str, str]
    ) -> None:
        from penguinctl.remote import admin_key
        from penguinctl.remote.errors import SshAuthFailed

        old_public = fields.get("previous_public_key")
        if old_public:
            with self._connect(item.target, data, fields["private_key"]) as conn:
                admin_key.revoke(conn, old_public)
        old_private = fields.get("previous_private_key")
        if old_private:
            try:
                with self._connect(item.target, data, old_private):
                    pass
            except SshAuthFailed:
                pass  # what we want: the old key is refused
            else:
                raise ProviderError(
                    f"server {item.target}: the old admin key still logs in after its removal "
                    "from authorized_keys",
                    hint="check the server's AuthorizedKeysFile for other files holding the key",
                )
        kept = {
            k: v for k, v in fields.items() if not k.startswith("previous_") and k != "retire_after"
        }
        self.ctx.secrets.put(item.path, kept)
        self._audit(tenant, item, "retire")

    # -- helpers -----------------------------------------------------------------------------
    def _fields(self, path: str) -> dict[str, str]:
        stored = self.ctx.secrets.get(path)
        if not stored or "private_key" not in stored:
            raise ProviderError(f"no admin SSH key at {path} to rotate")
        return {k: v.reveal() for k, v in stored.items()}

    def _connect(self, server: str, data: dict[str, Any], key: str):
        """An open session to ``server`` logging in with ``key``, through its jump hosts (a
        jump Server with its own admin key)."""
        from penguinctl.remote.hostkeys import StateHostKeyStore
        from penguinctl.remote.servers import connection, endpoint_of, private_key
        from penguinctl.remote.ssh import SshOptions

        servers = self._servers()
        ep = endpoint_of(server, data, servers, tenant=servers.get(server, ("", {}))[0])
        if ep is None:
            raise ProviderError(f"server {server}: penguinctl has no SSH access to it")
        conn = connection(
            ep,
            lambda e: (
                key if e.server == server else private_key(self.ctx.secrets, e.server, e.tenant)
            ),
            StateHostKeyStore(self.ctx.engine, actor=self.ctx.actor),
            SshOptions(retries=1),
        )
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        return conn

    def _audit(
        self,
        tenant: str,
        item: DueItem,
        step: str,
        details: dict[str, Any] | None = None,
        rotated: tuple[str, str, str] | None = None,
    ) -> None:
        self.ctx.audit(
            tenant=tenant,
            action=f"secret.rotate.ssh.{step}",
            resource=f"server/{item.target}",
            details={"path": item.path, **(details or {})},
            rotated=rotated,
        )
