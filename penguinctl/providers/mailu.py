"""The ``mail:<server>`` provider: a server's MailU domains, mailboxes and aliases, through
MailU's REST API (``penguinctl.providers.mailu_api``). It never uses SSH.

Resources (built in ``penguinctl.desired``):

- ``maildomain`` ``<domain>``: ``{"server", "max_users", "max_aliases", "max_quota_bytes",
  "signup_enabled"}`` (MailU's domain object; defaults -1/-1/0/false).
- ``mailbox`` ``<local>@<domain>``: ``{"domain", "display_name", "daily_limit", "password"}``:
  a MailU user with ``displayed_name`` and ``enabled: true``. ``daily_limit`` is penguinctl's
  own cap (the MailU install raises ``MESSAGE_RATELIMIT`` above it); ``password`` is a secret
  reference from the spec or None.
- ``mailalias`` ``<local>@<domain>``: ``{"domain", "destinations"}`` (sorted, lowercased).

Passwords. A mailbox without a spec reference gets a generated password (32 random bytes,
URL-safe) written to the secrets backend at ``mailboxes/<address>`` (fields ``password``,
``rotated_at``) *before* the user is created, so a crash never leaves a mailbox whose password
nobody knows; a re-run finds the secret and uses it. A mailbox with a ``password`` reference gets
the referenced value (resolved at apply time, never stored by penguinctl). When a create finds
the user already in MailU (a crash after the POST, or a user made by hand and now adopted), the
password is set again so the stored one is the one that works. A changed reference updates the
password. Deleting a mailbox deletes the generated secret after the user.

Live state: ``read_recorded`` lists domains, users and aliases (three GETs per server) and maps
them back onto the recorded data, so a mailbox or alias deleted by hand is planned again, a
domain setting or display name changed by hand is planned back. MailU cannot say whether a
password still matches (the API only returns its hash): password drift is not detected.

Safety: deleting ``maildomain`` and ``mailbox`` resources needs ``--force`` (they are in
``PROTECTED_KINDS``: a deleted MailU user loses access to its mail, a deleted MailU domain takes
every user and alias in it, those made by hand included). Aliases hold no data and are deleted
without ``--force``.

Batching: changes are batched per (kind, action); a batch runs its requests on ``workers``
threads and, when one fails, the engine retries the batch change by change
(``isolate_failures``) so one bad mailbox fails alone.
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from penguinctl import clock
from penguinctl.errors import PenguinError, ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.base import Provider
from penguinctl.providers.mailu_api import MailuClient, MailuNotFound
from penguinctl.providers.secrets.base import SecretsBackend
from penguinctl.resources import ResourceKey

KINDS = ("maildomain", "mailbox", "mailalias")
DOMAIN_FIELDS = ("max_users", "max_aliases", "max_quota_bytes", "signup_enabled")
PASSWORD_FIELD = "password"
NEXT_PASSWORD_FIELD = "next_password"  # written first by a rotation under way


def mailbox_secret_path(tenant: str, address: str) -> str:
    """Where the mailbox's password lives (``penguinctl.secret_paths``)."""
    from penguinctl import secret_paths

    return secret_paths.mailbox(tenant, address)


def new_password() -> str:
    return _random.token_urlsafe(32)


def _now() -> str:
    return clock.now().replace(microsecond=0).isoformat()


class MailuProvider(Provider):
    max_parallel = 2  # batches at once; each uses ``workers`` threads
    isolate_failures = True

    def __init__(
        self,
        name: str,
        *,
        server: str,
        client: MailuClient,
        secrets: SecretsBackend,
        env: Mapping[str, str] | None = None,
        workers: int = 4,
        now: Callable[[], str] = _now,
    ) -> None:
        super().__init__(name)
        self.server = server
        self.client = client
        self.secrets = secrets
        self.env = env
        self.workers = max(1, workers)
        self._now = now

    def batch_key(self, change: Change) -> Hashable:
        return (change.key.kind, change.action.value)

    # -- live state -----------------------------------------------------------------------------
    def read(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, dict[str, Any]]:
        return self.read_recorded({k: {} for k in keys})

    def read_recorded(
        self, recorded: Mapping[ResourceKey, dict[str, Any]]
    ) -> dict[ResourceKey, dict[str, Any]]:
        """Live data of the recorded resources that exist in MailU: MailU's fields read live,
        the ones MailU does not hold (a mailbox's daily limit and password reference) kept."""
        kinds = {k.kind for k in recorded}
        domains = users = aliases = {}
        if "maildomain" in kinds:
            domains = {d.get("name", "").lower(): d for d in self.client.domains()}
        if "mailbox" in kinds:
            users = {u.get("email", "").lower(): u for u in self.client.users()}
        if "mailalias" in kinds:
            aliases = {a.get("email", "").lower(): a for a in self.client.aliases()}
        live: dict[ResourceKey, dict[str, Any]] = {}
        for key, data in recorded.items():
            name = key.name.lower()
            domain = name.rpartition("@")[2]
            if key.kind == "maildomain" and name in domains:
                d = domains[name]
                live[key] = {"server": self.server, **{f: d.get(f) for f in DOMAIN_FIELDS}}
            elif key.kind == "mailbox" and name in users:
                u = users[name]
                live[key] = {
                    **data,
                    "domain": data.get("domain", domain),
                    "display_name": u.get("displayed_name") or None,
                }
            elif key.kind == "mailalias" and name in aliases:
                dests = aliases[name].get("destination") or []
                live[key] = {
                    "domain": data.get("domain", domain),
                    "destinations": sorted({d.lower() for d in dests}),
                }
        return live

    # -- applying -------------------------------------------------------------------------------
    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        for change in changes:
            if change.key.kind not in KINDS:
                raise ProviderError(f"{change.key}: the MailU provider does not manage this kind")
        if len(changes) == 1 or self.workers == 1:
            return [self._apply(c) for c in changes]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(changes))) as pool:
            futures = [pool.submit(self._apply, c) for c in changes]
            results, first_error = [], None
            for fut in futures:
                try:
                    results.append(fut.result())
                except Exception as exc:
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return results

    def _apply(self, change: Change) -> ChangeResult:
        kind = change.key.kind
        detail = getattr(self, f"_{kind}")(change)
        return ChangeResult(change=change, data=change.after, detail=detail)

    # maildomain --------------------------------------------------------------------------------
    def _maildomain(self, change: Change) -> str:
        name = change.key.name
        if change.action is Action.DELETE:
            return "deleted" if self.client.delete_domain(name) else "already gone"
        after = change.after or {}
        fields = {f: after[f] for f in DOMAIN_FIELDS if f in after}
        return self.client.ensure_domain(name, fields)

    # mailbox -----------------------------------------------------------------------------------
    def _mailbox(self, change: Change) -> str:
        address = change.key.name
        if change.action is Action.DELETE:
            gone = self.client.delete_user(address)
            if not (change.before or {}).get("password"):
                # ours: generated for it
                self.secrets.delete(mailbox_secret_path(change.key.tenant, address))
            return "deleted" if gone else "already gone"
        after = change.after or {}
        before = change.before or {}
        fields = {"displayed_name": after.get("display_name") or "", "enabled": True}
        ref = after.get("password")
        set_password = change.action is Action.CREATE or (
            change.action is Action.UPDATE and before.get("password") != ref
        )
        tenant = change.key.tenant
        password = self._password(tenant, address, ref) if set_password else None
        try:
            return self.client.ensure_user(
                address,
                fields,
                password=lambda: password or self._password(tenant, address, ref),
                set_password=set_password,
            )
        except MailuNotFound as exc:
            raise _with_hint(
                exc,
                f"create the domain first: its maildomain/{after.get('domain')} resource must "
                "be applied (or exist in MailU)",
            ) from None

    def _password(self, tenant: str, address: str, ref: str | None) -> str:
        """The password this mailbox must have: the spec's reference, else the stored one,
        else a new one stored first (before MailU ever sees it)."""
        if ref:
            from penguinctl.providers.secrets.resolve import resolve

            return resolve(ref, secrets=self.secrets, env=self.env).reveal()
        path = mailbox_secret_path(tenant, address)
        stored = self.secrets.get(path) or {}
        current = stored.get(PASSWORD_FIELD)
        if current is not None and current.reveal():
            return current.reveal()
        value = new_password()
        fields = {k: v.reveal() for k, v in stored.items()}
        fields.update({PASSWORD_FIELD: value, "rotated_at": self._now()})
        self.secrets.put(path, fields)
        return value

    # mailalias ---------------------------------------------------------------------------------
    def _mailalias(self, change: Change) -> str:
        address = change.key.name
        if change.action is Action.DELETE:
            return "deleted" if self.client.delete_alias(address) else "already gone"
        destinations = list((change.after or {}).get("destinations") or [])
        try:
            return self.client.ensure_alias(address, destinations)
        except MailuNotFound as exc:
            raise _with_hint(
                exc,
                "MailU's API accepts only existing mailboxes of this server as alias "
                "destinations, and the alias's domain must exist: add the destination as a "
                "mailbox (or create it in MailU) first",
            ) from None


def _with_hint(exc: PenguinError, hint: str) -> PenguinError:
    other = exc.in_context("")
    other.hint = hint
    return other


__all__ = ["MailuProvider", "mailbox_secret_path", "new_password"]
