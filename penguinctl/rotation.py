"""DKIM key rotation: the per-domain state machine of ``penguinctl.dkim_phases``, driven by
``dkim rotate``.

Each call of ``Rotator.advance`` does every step that is due now, in order, and stops at the
first one that must wait (for time, or for DNS to show a record). Every step is idempotent and
recorded on its own (resource rows and an audit event in one transaction), so a rotation killed at
any point resumes where it stopped:

1. rotate: generate a key pair under a new dated selector (``pmYYYYMM``, then ``pmYYYYMMDD``,
   then a time suffix; a selector named in the audit log is never used again); phase generated.
2. publish: put its TXT record through the domain's DNS provider and check that the zone's
   authoritative servers answer it; then published. Not visible yet: stays generated, re-checked
   on the next call.
3. activate (``propagation`` after published): check the record again, switch the server's
   signer (``providers.signers``), mark the new key active and the old one retiring, together.
4. revoke (``retire_after`` after the switch): publish the old key with an empty ``p=``.
5. remove (``remove_after`` after revoking): delete the record and destroy the private key.

The active key is never revoked or removed: only a retiring key is revoked, only a revoked key
removed, and a new key becomes active in the same transaction that retires the old one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from penguinctl import clock
from penguinctl.dkim import dkim_txt_value, selector_for
from penguinctl.dkim_phases import ACTIVE, GENERATED, PUBLISHED, REMOVED, RETIRING, REVOKED
from penguinctl.dns.records import Record, make_record, record_name
from penguinctl.errors import PenguinError, ProviderError, UsageError
from penguinctl.plan.changes import Action, Change
from penguinctl.providers.dkim import secret_path
from penguinctl.providers.signers import signer_for
from penguinctl.resources import ResourceKey
from penguinctl.spec.durations import Duration
from penguinctl.state import audit, repo
from penguinctl.state.columns import aware
from penguinctl.state.db import session_scope
from penguinctl.state.models import AuditEvent
from penguinctl.state.recording import record_results

DEFAULTS = {
    "rotate_every": "180d",
    "propagation": "48h",
    "retire_after": "7d",
    "remove_after": "7d",
}
MAX_STEPS = 12  # per domain and call: a full rotation is 5 steps


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class Timings:
    rotate_every: timedelta
    propagation: timedelta
    retire_after: timedelta
    remove_after: timedelta

    @classmethod
    def of(cls, dkim: dict[str, Any] | None) -> Timings:
        dkim = dkim or {}
        return cls(**{k: Duration(str(dkim.get(k) or v)) for k, v in DEFAULTS.items()})


@dataclass
class Key:
    tenant: str
    selector: str
    phase: str
    since: datetime
    created: datetime
    data: dict[str, Any]

    def key(self, domain: str) -> ResourceKey:
        return ResourceKey("dkim", self.tenant, f"{domain}/{self.selector}")


@dataclass
class DomainKeys:
    domain: str
    tenant: str
    data: dict[str, Any]  # the recorded domain
    server: dict[str, Any] | None
    dns: dict[str, Any] | None  # the recorded DNS provider config
    keys: list[Key]
    records: dict[str, dict[str, Any]]  # recorded dnsrecord data by resource name

    @property
    def timings(self) -> Timings:
        return Timings.of(self.data.get("dkim"))

    def with_phase(self, *phases: str) -> list[Key]:
        return [k for k in self.keys if k.phase in phases]

    @property
    def active(self) -> Key | None:
        found = self.with_phase(ACTIVE)
        return found[-1] if found else None

    @property
    def in_progress(self) -> bool:
        return bool(self.with_phase(GENERATED, PUBLISHED))


@dataclass(frozen=True)
class Step:
    action: str  # rotate | publish | activate | revoke | remove
    selector: str | None
    due: datetime

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "action": self.action,
            "selector": self.selector,
            "due": _iso(self.due),
            "due_in_seconds": max(0, int((self.due - now).total_seconds())),
        }


def steps(dk: DomainKeys) -> list[Step]:
    """Every next step of the domain's keys, earliest first (``rotate`` only when idle)."""
    t = dk.timings
    out = [Step("publish", k.selector, k.since) for k in dk.with_phase(GENERATED)]
    out += [Step("activate", k.selector, k.since + t.propagation) for k in dk.with_phase(PUBLISHED)]
    out += [Step("revoke", k.selector, k.since + t.retire_after) for k in dk.with_phase(RETIRING)]
    out += [Step("remove", k.selector, k.since + t.remove_after) for k in dk.with_phase(REVOKED)]
    active = dk.active
    if not dk.in_progress and active is not None:
        out.append(Step("rotate", active.selector, active.created + t.rotate_every))
    return sorted(out, key=lambda s: s.due)


@dataclass
class Outcome:
    domain: str
    action: str
    selector: str | None
    result: str  # done | waiting | failed
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "action": self.action,
            "selector": self.selector,
            "result": self.result,
            "detail": self.detail,
        }


# (domain keys, the record, its resource key) -> (seen, detail)
DnsCheck = Callable[[DomainKeys, Record, ResourceKey], tuple[bool, str]]


def _rows(db, domains: Sequence[str] | None) -> list[Any]:
    """Resource rows a rotation needs: everything, or (for a few domains) only their domain,
    key and record rows plus the servers and DNS providers."""
    with session_scope(db) as session:
        if domains is None or len(domains) > 20:
            return repo.list_resources(session)
        rows = repo.list_resources(session, kind="server")
        rows += repo.list_resources(session, kind="dnsprovider")
        for domain in domains:
            rows += repo.list_resources(session, kind="domain", name=domain)
            rows += repo.list_resources_prefixed(session, kind="dkim", prefix=f"{domain}/")
            rows += repo.list_resources_prefixed(session, kind="dnsrecord", prefix=f"{domain}/")
        return rows


def load(db, domains: Sequence[str] | None) -> list[DomainKeys]:
    """The recorded keys of ``domains`` (every recorded domain when None)."""
    rows = _rows(db, domains)
    # a domain is its owner's (the tenant that recorded it first, penguinctl.plan.confine):
    # another tenant's rows of the same name (left before ownership) are never rotated
    owner: dict[str, Any] = {}
    for r in rows:
        if r.kind == "domain" and (
            r.name not in owner or (aware(r.created_at), r.id) < owner[r.name][1]
        ):
            owner[r.name] = (r.tenant, (aware(r.created_at), r.id))
    by_kind: dict[str, list[Any]] = {}
    for row in rows:
        if row.kind in ("domain", "dkim", "dnsrecord"):
            name = row.name.split("/", 1)[0]
            if name in owner and owner[name][0] != row.tenant:
                continue
        by_kind.setdefault(row.kind, []).append(row)
    domain_rows = {r.name: r for r in by_kind.get("domain", [])}
    wanted = sorted(domain_rows) if domains is None else list(dict.fromkeys(domains))
    unknown = [d for d in wanted if d not in domain_rows]
    if unknown:
        raise UsageError(
            f"not a recorded domain: {', '.join(unknown[:5])}",
            hint="apply a spec containing it first (`penguinctl get domains` lists them)",
        )
    servers = {(r.tenant, r.name): r.data for r in by_kind.get("server", [])}
    dns = {(r.tenant, r.name): r.data for r in by_kind.get("dnsprovider", [])}
    keys: dict[str, list[Key]] = {}
    for r in by_kind.get("dkim", []):
        since = r.data.get("phase_since")
        created = aware(r.created_at)
        keys.setdefault(r.data["domain"], []).append(
            Key(
                tenant=r.tenant,
                selector=r.data["selector"],
                phase=r.data.get("phase") or ACTIVE,
                since=aware(datetime.fromisoformat(since)) if since else created,
                created=created,
                data=r.data,
            )
        )
    records: dict[str, dict[str, dict[str, Any]]] = {}
    for r in by_kind.get("dnsrecord", []):
        records.setdefault(r.data["zone"], {})[r.name] = r.data
    out = []
    for name in wanted:
        row = domain_rows[name]
        server_name, dns_name = row.data["server"], row.data["dns"]
        out.append(
            DomainKeys(
                domain=name,
                tenant=row.tenant,
                data=row.data,
                server=servers.get((row.tenant, server_name)) or servers.get(("", server_name)),
                dns=dns.get((row.tenant, dns_name)) or dns.get(("", dns_name)),
                keys=sorted(keys.get(name, []), key=lambda k: (k.created, k.selector)),
                records=records.get(name, {}),
            )
        )
    return out


class Rotator:
    def __init__(
        self,
        *,
        db,
        providers,
        check_dns: DnsCheck,
        actor: str,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        self.db = db
        self.providers = providers
        self.check_dns = check_dns
        self.actor = actor
        self.now = now
        self.run_id: int | None = None

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, tenants: Sequence[str]) -> int:
        with session_scope(self.db) as session:
            run = repo.start_run(
                session,
                operation="dkim-rotate",
                actor=self.actor,
                host=socket.gethostname(),
                pid=os.getpid(),
                tenants=sorted(set(tenants)),
                plan_checksum=None,
            )
            self.run_id = run.id
        return self.run_id

    def finish_run(self, outcomes: Sequence[Outcome]) -> None:
        if self.run_id is None:
            return
        failed = [o for o in outcomes if o.result == "failed"]
        done = [o for o in outcomes if o.result == "done"]
        status = "ok" if not failed else ("partial" if done else "failed")
        with session_scope(self.db) as session:
            repo.finish_run(
                session,
                self.run_id,
                status=status,
                summary={"outcomes": [o.to_json() for o in outcomes]},
            )

    # -- driving ---------------------------------------------------------------------------------
    def advance(
        self,
        domain: str,
        *,
        start: bool = False,
        start_if_due: bool = False,
        loaded: DomainKeys | None = None,
    ) -> list[Outcome]:
        """Do every step of ``domain`` that is due; ``start`` begins a rotation now (unless one
        is in progress), ``start_if_due`` when the active key is older than ``rotate_every``.
        ``loaded`` is the domain as just loaded (saves a query when nothing is due)."""
        outcomes: list[Outcome] = []
        tried: set[tuple[str, str | None]] = set()
        for i in range(MAX_STEPS):
            (dk,) = [loaded] if (i == 0 and loaded is not None) else load(self.db, [domain])
            now = self.now()
            todo = [s for s in steps(dk) if (s.action, s.selector) not in tried]
            step: Step | None = None
            if start and not dk.in_progress and not any(o.action == "rotate" for o in outcomes):
                step = Step("rotate", None, now)
            else:
                due = [s for s in todo if s.due <= now]
                if due and (due[0].action != "rotate" or start_if_due):
                    step = due[0]
            if step is None:
                break
            tried.add((step.action, step.selector))
            try:
                outcome = getattr(self, f"_{step.action}")(dk, step, now)
            except PenguinError as exc:
                outcome = Outcome(domain, step.action, step.selector, "failed", str(exc))
                self._audit_failure(dk, step, str(exc))
            outcomes.append(outcome)
            if outcome.result != "done":
                break
        return outcomes

    # -- steps ---------------------------------------------------------------------------------
    def _rotate(self, dk: DomainKeys, step: Step, now: datetime) -> Outcome:
        selector = self._new_selector(dk, now)
        spec = dk.data.get("dkim") or {}
        change = Change(
            Action.CREATE,
            ResourceKey("dkim", dk.tenant, f"{dk.domain}/{selector}"),
            "dkim",
            None,
            {
                "domain": dk.domain,
                "selector": selector,
                "algorithm": spec.get("algorithm", "rsa"),
                "bits": spec.get("bits", 2048),
                "phase": GENERATED,
                "phase_since": _iso(now),
            },
        )
        results = self.providers.get("dkim").apply_batch([change])
        with session_scope(self.db) as session:
            record_results(
                session, results, actor=self.actor, run_id=self.run_id, details={"step": "rotate"}
            )
            self._advanced(session, dk, "rotate", selector, GENERATED)
        replaces = dk.active.selector if dk.active else None
        return Outcome(dk.domain, "rotate", selector, "done", f"new key, replaces {replaces}")

    def _publish(self, dk: DomainKeys, step: Step, now: datetime) -> Outcome:
        key = self._key(dk, step.selector)
        record, rkey = self._put_record(dk, key.selector, key.data.get("public_key") or "")
        seen, detail = self.check_dns(dk, record, rkey)
        if not seen:
            return Outcome(dk.domain, "publish", key.selector, "waiting", detail)
        self._set_phases(
            dk, {key.selector: PUBLISHED}, now, "dkim.published", {"seen": detail}, step="publish"
        )
        return Outcome(dk.domain, "publish", key.selector, "done", detail)

    def _activate(self, dk: DomainKeys, step: Step, now: datetime) -> Outcome:
        key = self._key(dk, step.selector)
        record, rkey = self._put_record(dk, key.selector, key.data.get("public_key") or "")
        seen, detail = self.check_dns(dk, record, rkey)
        if not seen:
            return Outcome(dk.domain, "activate", key.selector, "waiting", detail)
        signer = signer_for(
            dk.data["server"],
            dk.server,
            secrets=self.providers.secrets,
            db=self.db,
            env=self.providers.env,
            actor=self.actor,
        )
        path = secret_path(dk.tenant, dk.domain, key.selector)
        note = signer.switch(dk.domain, key.selector, path)
        phases = {k.selector: RETIRING for k in dk.with_phase(ACTIVE)}
        phases[key.selector] = ACTIVE
        old = sorted(s for s, p in phases.items() if p == RETIRING)
        self._set_phases(
            dk,
            phases,
            now,
            "dkim.activate",
            {"from": old, "to": key.selector, "signer": note},
            step="activate",
            selector=key.selector,
        )
        return Outcome(dk.domain, "activate", key.selector, "done", note)

    def _revoke(self, dk: DomainKeys, step: Step, now: datetime) -> Outcome:
        key = self._key(dk, step.selector)
        if key.phase != RETIRING:  # never the signing key
            raise ProviderError(f"{dk.domain}: key {key.selector} is {key.phase}, not retiring")
        self._put_record(dk, key.selector, "")
        self._set_phases(dk, {key.selector: REVOKED}, now, "dkim.revoke", {}, step="revoke")
        return Outcome(dk.domain, "revoke", key.selector, "done", "published with an empty p=")

    def _remove(self, dk: DomainKeys, step: Step, now: datetime) -> Outcome:
        key = self._key(dk, step.selector)
        if key.phase != REVOKED:  # never the signing key
            raise ProviderError(f"{dk.domain}: key {key.selector} is {key.phase}, not revoked")
        name = record_name(dk.domain, f"{key.selector}._domainkey", "TXT")
        before = dk.records.get(name)
        if before is not None:
            change = Change(
                Action.DELETE,
                ResourceKey("dnsrecord", dk.tenant, name),
                self._dns_provider_name(dk),
                before,
                None,
            )
            results = self.providers.get(change.provider).apply_batch([change])
            with session_scope(self.db) as session:
                record_results(
                    session,
                    results,
                    actor=self.actor,
                    run_id=self.run_id,
                    details={"step": "remove"},
                )
        change = Change(Action.DELETE, key.key(dk.domain), "dkim", key.data, None)
        results = self.providers.get("dkim").apply_batch([change])
        with session_scope(self.db) as session:
            record_results(
                session, results, actor=self.actor, run_id=self.run_id, details={"step": "remove"}
            )
            self._advanced(session, dk, "remove", key.selector, REMOVED)
        return Outcome(
            dk.domain, "remove", key.selector, "done", "record deleted, private key destroyed"
        )

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _key(dk: DomainKeys, selector: str | None) -> Key:
        for k in dk.keys:
            if k.selector == selector:
                return k
        raise ProviderError(f"{dk.domain}: no recorded DKIM key {selector}")

    def _dns_provider_name(self, dk: DomainKeys) -> str:
        return f"dns:{dk.data['dns']}"

    def _put_record(
        self, dk: DomainKeys, selector: str, public_key: str
    ) -> tuple[Record, ResourceKey]:
        """Publish (idempotently) the TXT record of ``selector``; ``""`` publishes it revoked."""
        ttl = int((dk.dns or {}).get("ttl", 3600))
        record = make_record(
            dk.domain, f"{selector}._domainkey", "TXT", ttl, [dkim_txt_value(public_key)]
        )
        name = record_name(dk.domain, record["name"], "TXT")
        rkey = ResourceKey("dnsrecord", dk.tenant, name)
        before = dk.records.get(name)
        if before == record:
            # recorded as published; the provider re-applies only when it reads different
            live = self.providers.get(self._dns_provider_name(dk)).read([rkey])
            if live is None or live.get(rkey) == record:
                return record, rkey
        change = Change(
            Action.UPDATE if before else Action.CREATE,
            rkey,
            self._dns_provider_name(dk),
            before,
            record,
        )
        results = self.providers.get(change.provider).apply_batch([change])
        with session_scope(self.db) as session:
            record_results(
                session, results, actor=self.actor, run_id=self.run_id, details={"step": "dkim"}
            )
        dk.records[name] = record
        return record, rkey

    def _set_phases(
        self,
        dk: DomainKeys,
        phases: dict[str, str],
        now: datetime,
        action: str,
        details: dict[str, Any],
        *,
        step: str,
        selector: str | None = None,
    ) -> None:
        """Move keys to new phases in one transaction, with one audit event per key and one
        ``dkim.rotation.advanced`` event for ``step`` (of ``selector``, or the only key moved)."""
        with session_scope(self.db) as session:
            moved = selector or next(iter(phases))
            self._advanced(session, dk, step, moved, phases[moved])
            for selector, phase in phases.items():
                key = self._key(dk, selector)
                data = {**key.data, "phase": phase, "phase_since": _iso(now)}
                repo.upsert_resource(
                    session, key=key.key(dk.domain), provider="dkim", data=data, run_id=self.run_id
                )
                audit.record(
                    session,
                    actor=self.actor,
                    tenant=dk.tenant,
                    action=action,
                    resource=str(key.key(dk.domain)),
                    result="ok",
                    run_id=self.run_id,
                    details={"from_phase": key.phase, "to_phase": phase, **details},
                )

    def _advanced(self, session, dk: DomainKeys, step: str, selector: str, phase: str) -> None:
        from penguinctl.events.outbox import emit

        emit(
            session,
            "dkim.rotation.advanced",
            tenant=dk.tenant,
            subject=f"domain/{dk.domain}",
            payload={
                "domain": dk.domain,
                "selector": selector,
                "step": step,
                "phase": phase,
                "run_id": self.run_id,
            },
        )

    def _audit_failure(self, dk: DomainKeys, step: Step, message: str) -> None:
        from penguinctl.events.outbox import emit

        with session_scope(self.db) as session:
            emit(
                session,
                "dkim.rotation.failed",
                tenant=dk.tenant,
                subject=f"domain/{dk.domain}",
                payload={
                    "domain": dk.domain,
                    "selector": step.selector,
                    "step": step.action,
                    "error": message[:500],
                    "run_id": self.run_id,
                },
            )
            audit.record(
                session,
                actor=self.actor,
                tenant=dk.tenant,
                action=f"dkim.{step.action}",
                resource=f"dkim/{dk.tenant or '-'}/{dk.domain}/{step.selector or '-'}",
                result="failed",
                run_id=self.run_id,
                details={"error": message[:500]},
            )

    def _new_selector(self, dk: DomainKeys, now: datetime) -> str:
        """A dated selector never used before by this domain (recorded or in the audit log)."""
        base = selector_for(now.date())
        candidates = [base, f"{base}{now.day:02d}", f"{base}{now.day:02d}t{now:%H%M%S}"]
        candidates += [f"{candidates[-1]}{i}" for i in range(1, 100)]
        used = {k.selector for k in dk.keys}
        with session_scope(self.db) as session:
            prefix = f"dkim/{dk.tenant or '-'}/{dk.domain}/"
            stmt = select(AuditEvent.resource).where(col(AuditEvent.resource).startswith(prefix))
            used |= {r[len(prefix) :] for r in session.exec(stmt)}
        for candidate in candidates:
            if candidate not in used:
                return candidate
        raise ProviderError(f"{dk.domain}: no unused DKIM selector left for {base}")


__all__ = [
    "DomainKeys",
    "Key",
    "Outcome",
    "Rotator",
    "Step",
    "Timings",
    "load",
    "steps",
]
