"""The secrets layout version: detect the old, ownerless layout and move it to the new one.

Before tenant-scoped paths (``penguinctl.secret_paths``) secrets lived at ``domains/<domain>/...``,
``mailboxes/<address>``, ``servers/<server>/{ssh,mailu}``, ``backups/<server>``, plus a few
platform secrets at ``providers/hostwinds``, ``providers/stripe``, ``campaigns/unsubscribe`` and
``notify/webhook``. ``require_current`` refuses to work on a store that still holds them (every
command that uses managed secrets calls it; ``penguinctl secrets list/get/put`` do not), and
``migrate`` moves them: each secret is copied to its owner's path, read back and compared, and
only then deleted at the old path, so a crash at any point loses nothing and a re-run resumes.
The owner of each secret comes from the state store (who the domain, mailbox or server is
recorded for; the platform for a server of no tenant). A secret nobody owns any more goes to
``platform/unowned/<old path>`` (kept, never deleted); a secret holding only a ``value`` field
(what a spec's ``keystore:NAME`` reference reads) stays where it is, since specs name it. When
everything is moved, the marker ``platform/layout`` (``version: 2``) is written.

SSH keys and mailbox passwords that do not carry their rotation time get ``rotated_at`` set to
the time of their latest version at the old path (the copy is new; its age must not reset).
Only the latest version is copied: Vault's older versions stay behind with the old path's
metadata until the delete destroys them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from penguinctl import secret_paths
from penguinctl.errors import ConfigError, SecretError

MARKER = f"{secret_paths.PLATFORM}/layout"
VERSION = "2"
LEGACY_FOLDERS = frozenset({"domains/", "mailboxes/", "servers/", "backups/"})
UNOWNED = f"{secret_paths.PLATFORM}/unowned"
REFERENCE_FIELD = "value"  # what keystore:NAME references read
_KEEP_AGE = ("mailboxes", "servers")  # rotated kinds whose age is read from the secret


def legacy_signs(backend: Any) -> list[str]:
    """What of the old layout the store still holds (folders and paths); [] when current, or
    when the credentials may not list the store's root (a token scoped to one tenant's prefix
    cannot see old paths either: the operator's migrate-layout run can)."""
    try:
        top = backend.children("")
    except SecretError as exc:
        if "denied" in exc.message:
            return []
        raise
    signs = sorted(LEGACY_FOLDERS & top)
    folders = {p.split("/", 1)[0] + "/" for p in secret_paths.LEGACY_PLATFORM}
    for folder in sorted(folders & top):
        names = backend.children(folder)
        signs += sorted(folder + n for n in names if folder + n in secret_paths.LEGACY_PLATFORM)
    if not signs:
        return []
    marker = backend.get(MARKER) or {}
    done = marker.get("version")
    if done is not None and done.reveal() >= VERSION:
        return []  # what is left are references specs name, kept on purpose
    return signs


def require_current(backend: Any) -> None:
    """Raise ``ConfigError`` when the store still holds old-layout secrets."""
    signs = legacy_signs(backend)
    if signs:
        shown = ", ".join(signs[:4]) + (" ..." if len(signs) > 4 else "")
        raise ConfigError(
            f"the {backend.name} holds secrets in the old layout without tenants ({shown})",
            hint="run `penguinctl secrets migrate-layout` once (--dry-run shows the moves); "
            "see the README's upgrade note",
        )


@dataclass(frozen=True)
class Move:
    old: str
    new: str | None  # None: stays where it is
    owner: str | None  # tenant ("" platform); None: nobody recorded owns it
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"from": self.old, "to": self.new, "owner": self.owner, "note": self.note}


def plan_moves(backend: Any, owners: Any) -> list[Move]:
    """Where every old-layout secret goes (``owners``: ``plan.confine.Owners`` of the state)."""
    moves: list[Move] = []
    for path in backend.list():
        if path in secret_paths.LEGACY_PLATFORM:
            moves.append(Move(path, secret_paths.LEGACY_PLATFORM[path], ""))
            continue
        subject = secret_paths.legacy_subject(path)
        if subject is None or path.split("/", 1)[0] + "/" not in LEGACY_FOLDERS:
            continue
        kind, name = subject
        owner = owners.owner(kind, name)
        if owner is None and kind == "mailbox":
            found = owners.domain_of(name.rpartition("@")[2])
            owner = found[1] if found else None
        if owner is None:
            moves.append(Move(path, f"{UNOWNED}/{path}", None, "no recorded owner"))
        else:
            moves.append(Move(path, secret_paths.relocate(path, owner), owner))
    return moves


@dataclass
class Outcome:
    move: Move
    result: str  # moved | already | kept | conflict | failed
    detail: str = ""


def _plain(fields: dict[str, Any] | None) -> dict[str, str] | None:
    return None if fields is None else {k: v.reveal() for k, v in fields.items()}


def migrate_one(backend: Any, move: Move) -> Outcome:
    """Copy, verify, then delete the old path. Safe to repeat after a crash at any point."""
    src = _plain(backend.get(move.old))
    if src is None:
        return Outcome(move, "already", "not at the old path any more")
    if set(src) == {REFERENCE_FIELD} and move.old not in secret_paths.LEGACY_PLATFORM:
        return Outcome(Move(move.old, None, move.owner, "a keystore: reference"), "kept")
    assert move.new is not None
    wanted = dict(src)
    if move.old.split("/", 1)[0] in _KEEP_AGE and "rotated_at" not in wanted:
        meta = backend.meta(move.old)
        if meta is not None and meta.updated_at:
            wanted["rotated_at"] = meta.updated_at
    dst = _plain(backend.get(move.new))
    if dst is None:
        backend.put(move.new, wanted)
        dst = _plain(backend.get(move.new))
    if dst is None or any(dst.get(k) != v for k, v in src.items()):
        return Outcome(
            move,
            "conflict",
            f"{move.new} already holds a different secret; both kept, decide which is right",
        )
    backend.delete(move.old)
    if backend.get(move.old) is not None:
        return Outcome(move, "failed", "the old path could not be deleted")
    return Outcome(move, "moved")


def migrate(
    backend: Any,
    moves: list[Move],
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run ``moves`` one by one (each independent); write the marker when none is left."""
    outcomes = []
    for move in moves:
        try:
            outcome = migrate_one(backend, move)
        except SecretError as exc:
            outcome = Outcome(move, "failed", exc.message)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    if all(o.result in ("moved", "already", "kept") for o in outcomes):
        backend.put(MARKER, {"version": VERSION})
    return outcomes
