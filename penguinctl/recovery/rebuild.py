"""``server rebuild NAME``: a lost server replaced by a new one, from its backups.

Steps, each journaled (``recovery.journal``) and audited as it finishes, each idempotent, so
a re-run after a crash at any point resumes where the journal stops and converges:

1. ``replacement``: the new host (static: ``--onto HOST[:PORT]``, recorded in the journal
   before anything else; a re-run naming another host is refused: never two replacements);
2. ``bootstrap``: penguinctl's admin key on it (through the server's initial key);
3. ``install``: MailU converged on it (the same playbook and secrets as the old server);
4. ``restore``: the newest *verified* backup restored in place (``recovery.snapshots``), then
   the DKIM signing keys and maps written again from the secrets backend;
5. ``cutover``: the server's recorded address moves to the new host and the tenant's recorded
   spec is applied: the A and SPF records (and the recorded IPs) follow;
6. ``verify``: mail flows: SMTP banner, IMAP login of a mailbox (its password from the secrets
   backend), and each domain's DKIM signing key on the new host matches its published key;
7. ``retire``: the old server is let go (a static host is only forgotten; penguinctl never
   touches a host it may not reach).

The recovery time (start of the rebuild to verified mail) is returned and printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from penguinctl import clock
from penguinctl.errors import CheckFailed, NotFound, ProviderError, UnsafePlan, UsageError
from penguinctl.recovery import journal

STEPS = ("replacement", "bootstrap", "install", "restore", "cutover", "verify", "retire")


@dataclass
class Options:
    onto: str | None = None  # HOST[:PORT] (static)
    ssh_user: str | None = None
    snapshot: str | None = None
    force: bool = False
    probes: dict[str, tuple[str | None, int]] = field(default_factory=dict)  # smtp/imap
    imap_tls: bool = True
    timeout: float = 6 * 3600.0
    specs: Any = None  # a loaded SpecSet (-f): a Hostwinds replacement takes its plan from it
    allow_rebuild: bool = False  # consent to a new plan Hostwinds cannot reach in place


def parse_onto(text: str) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdecimal() and host and not host.endswith(":"):
        return host.strip("[]"), int(port)
    return text.strip("[]"), None


class Rebuild:
    def __init__(self, app: Any, server: str, options: Options, say: Callable[[str], None]):
        self.app = app
        self.server = server
        self.opts = options
        self.say = say
        self.row: dict[str, Any] = {}
        self.tenant, self.old = self._recorded("server")
        stack = self._recorded_or_none("mailstack")
        self.stack: dict[str, Any] | None = stack[1] if stack else None

    # -- recorded state ---------------------------------------------------------------------
    def _recorded_or_none(self, kind: str) -> tuple[str, dict[str, Any]] | None:
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope

        with session_scope(self.app.db) as session:
            rows = [
                r
                for r in repo.list_resources(session, kind=kind, name=self.server)
                if r.status != "pending"
            ]
        return (rows[0].tenant or "", dict(rows[0].data or {})) if rows else None

    def _recorded(self, kind: str) -> tuple[str, dict[str, Any]]:
        found = self._recorded_or_none(kind)
        if found is None:
            raise NotFound(f"no recorded server {self.server}", hint="see `penguinctl server list`")
        return found

    @property
    def root(self) -> str:
        return str((self.stack or {}).get("root") or "/mailu")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        provider = self.old.get("provider")
        if provider not in ("static", "hostwinds"):
            raise UsageError(
                f"server {self.server} is a {provider} server: penguinctl does not reach it, "
                "so it cannot rebuild it"
            )
        self.row = self._open()
        steps = {
            "replacement": self._replacement,
            "bootstrap": self._bootstrap,
            "install": self._install,
            "restore": self._restore,
            "cutover": self._cutover,
            "verify": self._verify,
            "retire": self._retire,
        }
        resumed = [s for s in STEPS if s in self.row["steps"]]
        if resumed:
            self.say(f"resuming rebuild {self.row['id']} after: {', '.join(resumed)}")
        for step in STEPS:
            if step in self.row["steps"]:
                continue
            self.say(f"{step} ...")
            detail = steps[step]()
            journal.done(self.app.db, self.row, step, detail, replacement=self.row["replacement"])
            self.say(f"{step}: {detail.get('summary', 'done')}")
        verified = self.row["steps"]["verify"]["at"]
        from datetime import datetime

        seconds = (datetime.fromisoformat(verified) - self.row["started_at"]).total_seconds()
        journal.finish(self.app.db, self.row)
        return {
            "server": self.server,
            "rebuild": self.row["id"],
            "replacement": journal._public(self.row["replacement"]),
            "snapshot": self.row.get("snapshot_id"),
            "steps": self.row["steps"],
            "recovery_seconds": max(0.0, seconds),
        }

    def _open(self) -> dict[str, Any]:
        row = journal.running(self.app.db, self.server)
        if row is not None:
            self.old = dict(row["old"])  # the lost server, whatever cutover recorded since
        wanted = self._wanted_replacement()
        if row is not None:
            have = row["replacement"]
            if (
                wanted is not None
                and have.get("provider") == "static"
                and (have.get("address"), have.get("ssh_port"))
                != (
                    wanted["address"],
                    wanted["ssh_port"],
                )
            ):
                raise UnsafePlan(
                    f"server {self.server}: rebuild {row['id']} onto {have.get('address')} is "
                    f"unfinished; it is resumed, never replaced by another host",
                    hint=f"re-run `penguinctl server rebuild {self.server}` without --onto (or "
                    "with the same host) to finish it",
                )
            return row
        if wanted is None:
            raise UsageError(
                f"server {self.server} is static: say which host replaces it",
                hint=f"penguinctl server rebuild {self.server} --onto HOST[:PORT]",
            )
        from penguinctl.errors import PenguinError

        try:
            return journal.start(
                self.app.db,
                tenant=self.tenant,
                server=self.server,
                old=self.old,
                replacement=wanted,
                actor=self.app.actor(),
            )
        except PenguinError:
            raise
        except Exception:  # a concurrent start won the unique index: resume it
            row = journal.running(self.app.db, self.server)
            if row is None:
                raise
            return row

    def _wanted_replacement(self) -> dict[str, Any] | None:
        if self.old.get("provider") == "hostwinds":
            if self.opts.onto:
                raise UsageError("--onto is for static servers: a Hostwinds replacement is ordered")
            from penguinctl.desired import srvrname

            label = self.old.get("srvrname") or srvrname(self.tenant, self.server)
            wanted = {"provider": "hostwinds", "srvrname": f"{label}-r{clock.now():%Y%m%d%H%M%S}"}
            plan = self._spec_plan()
            if plan is not None and plan != self.old.get("hostwinds"):
                if not self.opts.allow_rebuild:
                    raise UnsafePlan(
                        f"server {self.server}: the spec changes its Hostwinds plan to {plan}: "
                        "the replacement would be a different server",
                        hint="pass --allow-rebuild to order it with the spec's plan",
                    )
                wanted["hostwinds"] = plan
            return wanted
        if not self.opts.onto:
            return None
        host, port = parse_onto(self.opts.onto)
        static = dict(self.old.get("static") or {})
        if host == static.get("address") and (port or 22) == (static.get("ssh_port") or 22):
            raise UsageError(f"{self.opts.onto} is server {self.server} itself")
        return {
            "provider": "static",
            "address": host,
            "ssh_port": port if port is not None else static.get("ssh_port"),
            "ssh_user": self.opts.ssh_user or static.get("ssh_user"),
        }

    # -- the new host -------------------------------------------------------------------------
    def _spec_plan(self) -> dict[str, Any] | None:
        """The ``hostwinds`` block of this server in the spec given with -f, if any."""
        specs = self.opts.specs
        if specs is None or self.server not in specs.servers:
            return None
        block = specs.servers[self.server].spec.hostwinds
        return block.model_dump(mode="json", exclude_none=True) if block is not None else None

    def new_data(self) -> dict[str, Any]:
        """The server's recorded data with the replacement's address."""
        rep = self.row["replacement"]
        if rep.get("provider") == "hostwinds":
            keep = (
                "service_id",
                "main_ip",
                "ips",
                "rdns",
                "monthly_cost",
                "ordered_at",
                "hostwinds",
            )
            return {
                **self.old,
                **{k: rep[k] for k in keep if rep.get(k) is not None},
                "status": "active",
            }
        static = {**(self.old.get("static") or {}), "address": rep["address"]}
        for k in ("ssh_port", "ssh_user"):
            if rep.get(k) is not None:
                static[k] = rep[k]
            else:
                static.pop(k, None)
        data = {**self.old, "static": static}
        import ipaddress

        try:
            data["ips"] = [str(ipaddress.ip_address(rep["address"]))]
        except ValueError:
            data["ips"] = []
        return data

    def provider(self):
        from penguinctl.plan.confine import domain_owners
        from penguinctl.providers.mailstack import MailstackProvider
        from penguinctl.remote.hostkeys import StateHostKeyStore

        owners = domain_owners(self.app.db)

        def audit(action: str, resource: str, details: dict[str, Any]) -> None:
            from penguinctl.state.audit import record_many

            with self.app.db.begin() as conn:
                record_many(
                    conn,
                    [
                        {
                            "actor": self.app.actor(),
                            "tenant": self.tenant,
                            "action": action,
                            "resource": resource,
                            "result": "ok",
                            "details": details,
                        }
                    ],
                )

        return MailstackProvider(
            f"mailstack:{self.server}",
            server=self.server,
            server_data=self.new_data(),
            secrets=self.app.secrets(),
            host_keys=StateHostKeyStore(self.app.db, actor=self.app.actor()),
            env=dict(self.app.env),
            audit=audit,
            tenant=self.tenant,
            domain_owner=lambda d: owners.get(d, ""),
        )

    # -- steps --------------------------------------------------------------------------------
    def _replacement(self) -> dict[str, Any]:
        rep = self.row["replacement"]
        if rep.get("provider") == "hostwinds":
            from penguinctl.recovery import hostwinds

            return hostwinds.order(self)
        where = f"{rep['address']}:{rep.get('ssh_port') or 22}"
        return {"summary": f"static host {where}", "address": rep["address"]}

    def _bootstrap(self) -> dict[str, Any]:
        with self.provider().connect() as conn:
            conn.run(["true"], check=True)
        return {"summary": "admin key logs in"}

    def _install(self) -> dict[str, Any]:
        if self.stack is None:
            return {"summary": "no mail stack recorded: nothing to install"}
        out = self.provider().converge(self.stack)
        return {
            "summary": f"MailU {self.stack.get('version')} converged",
            "changes": len(out.changes()),
        }

    def _restore(self) -> dict[str, Any]:
        from penguinctl.backup import records
        from penguinctl.backup.repository import credentials
        from penguinctl.backup.restic import ResticRemote
        from penguinctl.backup.service import _RESTORE_IN_PLACE
        from penguinctl.recovery.snapshots import choose

        snap, notes = choose(self.app.db, self.server, self.opts.snapshot)
        for note in notes:
            self.say(note)
        sid, repo = snap["snapshot_id"], snap["repository"]
        engine, actor = self.app.db, self.app.actor()
        run_id = records.start_run(
            engine,
            tenant=self.tenant,
            server=self.server,
            operation="restore",
            repository=repo,
            actor=actor,
        )
        common = {
            "actor": actor,
            "tenant": self.tenant,
            "resource": f"server/{self.server}",
            "action": "backup.restore",
        }
        try:
            with self.provider().connect() as conn:
                env, _ = credentials(
                    self.app.secrets(), self.server, repo, tenant=self.tenant, create=False
                )
                remote = ResticRemote(
                    conn, server=self.server, repository=repo, env=env, timeout=self.opts.timeout
                )
                remote._run(
                    _RESTORE_IN_PLACE,
                    [self.root, "mailu", remote.binary, remote.repository, sid],
                    "restore",
                )
                signing = dict((self.stack or {}).get("signing") or {})
                if signing:
                    from penguinctl.mailu.signing import MailuSigning
                    from penguinctl.plan.confine import domain_owners

                    owners = domain_owners(self.app.db)
                    MailuSigning(
                        conn,
                        secrets=self.app.secrets(),
                        root=self.root,
                        owner=lambda d: owners.get(d, ""),
                    ).sync(signing)
        except Exception as exc:
            from penguinctl.masking import mask

            records.finish_run(
                engine, run_id, status="failed", error=mask(str(exc))[:1000], **common
            )
            raise
        records.finish_run(
            engine, run_id, status="ok", snapshot_id=sid, stats={"target": "rebuild"}, **common
        )
        self.row["snapshot_id"] = sid
        from penguinctl.recovery.tables import ServerRebuild

        with self.app.db.begin() as c:
            t = ServerRebuild.__table__
            c.execute(t.update().where(t.c.id == self.row["id"]).values(snapshot_id=sid))
        return {
            "summary": f"snapshot {snap['short_id']} of {snap['taken_at']:%Y-%m-%d %H:%M} "
            f"UTC restored (verified)",
            "snapshot": sid,
            "skipped": notes,
        }

    def _cutover(self) -> dict[str, Any]:
        from penguinctl.recovery.cutover import move_hostwinds, move_server

        if self.row["replacement"].get("provider") == "hostwinds":
            return move_hostwinds(self)
        return move_server(self.app, self.tenant, self.server, self.row["replacement"])

    def _verify(self) -> dict[str, Any]:
        from penguinctl.recovery.probes import verify_mail

        results = verify_mail(self, self.opts)
        failed = [r for r in results if not r["ok"]]
        if failed:
            raise CheckFailed(
                f"server {self.server}: mail does not flow on the replacement: "
                + "; ".join(f"{r['check']}: {r['detail']}" for r in failed),
                hint="fix it and re-run `server rebuild` (the old server is not retired yet)",
            )
        return {"summary": ", ".join(f"{r['check']} ok" for r in results), "checks": results}

    def _retire(self) -> dict[str, Any]:
        if self.row["replacement"].get("provider") == "hostwinds":
            from penguinctl.recovery import hostwinds

            return hostwinds.retire(self, force=self.opts.force)
        static = self.old.get("static") or {}
        old = f"{static.get('address')}:{static.get('ssh_port') or 22}"
        return {
            "summary": f"old static host {old} retired (penguinctl no longer uses it; "
            "nothing to terminate)",
            "old": old,
        }


def now() -> Any:
    return clock.now()


__all__ = ["STEPS", "Options", "ProviderError", "Rebuild", "parse_onto"]
