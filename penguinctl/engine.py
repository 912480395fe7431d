"""Plan and apply orchestration.

``plan()`` loads recorded state for the spec's tenants, overlays what providers can read live,
diffs against the desired state and returns a ``Plan``. ``apply()`` executes a plan stage by stage
(deletes in reverse dependency order first, then creates and updates in dependency order). Each
batch's side effects run in a worker thread; its state rows and audit events are committed together
in one transaction on the calling thread, so an interrupted apply is recorded faithfully and a
re-run converges (providers are idempotent).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from penguinctl.desired import build_desired
from penguinctl.errors import PenguinError, ProviderError, UnsafePlan, UsageError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.plan.diff import diff
from penguinctl.plan.plan import Plan
from penguinctl.providers.registry import Providers
from penguinctl.resources import COMPUTED, KIND_ORDER, Resource, ResourceKey
from penguinctl.state import audit, repo
from penguinctl.state.db import session_scope
from penguinctl.state.journal import PENDING
from penguinctl.state.recording import audit_change, record_results

MAX_BATCH = 500
# Finished batches are recorded together, one transaction every RECORD_SECONDS at most (or
# RECORD_CHANGES changes, or when the stage is done): a transaction and its commit cost more
# than the few rows they write, and the recording thread competes with the provider threads
# for the interpreter. A crash loses at most that window's records; providers are idempotent,
# so the re-run converges (what was published but not recorded is planned and applied again).
RECORD_SECONDS = 0.25
RECORD_CHANGES = 2000


@dataclass
class ApplyReport:
    run_id: int | None
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = defaultdict(int)
        for c in self.applied:
            counts[c.action.value] += 1
        return {
            "run_id": self.run_id,
            "status": "ok" if self.ok else ("partial" if self.applied else "failed"),
            "applied": dict(counts),
            "failed": [{"resource": str(c.key), "error": err} for c, err in self.failed],
            "skipped": [str(c.key) for c in self.skipped],
        }


def spec_tenants(specs) -> list[str]:
    names = set(specs.tenants)
    for table in (specs.servers, specs.dns_providers, specs.domains):
        names.update(d.metadata.tenant for d in table.values() if d.metadata.tenant)
    return sorted(names)


def _stage(change: Change) -> tuple[int, int]:
    rank = KIND_ORDER.index(change.key.kind) if change.key.kind in KIND_ORDER else len(KIND_ORDER)
    return (0, -rank) if change.action is Action.DELETE else (1, rank)


class Engine:
    def __init__(
        self,
        *,
        specs,
        db_engine,
        secrets_factory: Callable[[], Any],
        zones_dir: Path,
        today: date,
        actor: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.specs = specs
        self.env = env
        self.db = db_engine
        self.zones_dir = zones_dir
        self.today = today
        self.actor = actor
        self.tenants = spec_tenants(specs)
        self._secrets_factory = secrets_factory
        self.recorded: dict[ResourceKey, dict[str, Any]] = {}
        self.recorded_providers: dict[ResourceKey, str] = {}
        self.first_applied: dict[ResourceKey, Any] = {}
        self.desired: dict[ResourceKey, Resource] = {}
        self.providers: Providers | None = None
        self.warnings: list[str] = []
        self.pending: list[Any] = []
        self._run_id: int | None = None
        self._foreign: set[ResourceKey] = set()
        self._journals: list[Any] = []

    # -- planning -----------------------------------------------------------------------------
    def _load_recorded(self) -> None:
        with session_scope(self.db) as session:
            rows = repo.load_resources(session, tenants=[*self.tenants, ""])
        self.pending = [r for r in rows if r.status == PENDING]  # intents, not resources
        rows = [r for r in rows if r.status != PENDING]
        self.recorded = {ResourceKey(r.kind, r.tenant, r.name): r.data for r in rows}
        self.recorded_providers = {ResourceKey(r.kind, r.tenant, r.name): r.provider for r in rows}
        self.first_applied = {
            ResourceKey(r.kind, r.tenant, r.name): r.created_at for r in rows if r.kind == "domain"
        }

    def _build_desired(self) -> dict[ResourceKey, Resource]:
        return build_desired(
            self.specs, recorded=self.recorded, today=self.today, zones_dir=self.zones_dir
        )

    def _providers(self) -> Providers:
        dns_configs = {k.name: d for k, d in self.recorded.items() if k.kind == "dnsprovider"}
        dns_configs.update(
            {k.name: r.data for k, r in self.desired.items() if k.kind == "dnsprovider"}
        )
        servers = {k.name: d for k, d in self.recorded.items() if k.kind == "server"}
        tenants = {k.name: k.tenant for k in (*self.recorded, *self.desired) if k.kind == "server"}
        for key, res in self.desired.items():
            if key.kind == "server":  # desired config, with outputs (IPs) from the record
                servers[key.name] = {**servers.get(key.name, {}), **res.data}
        return Providers(
            secrets_factory=self._secrets_factory,
            dns_configs=dns_configs,
            env=self.env,
            journal_factory=self._journal,
            server_configs=servers,
            db=self.db,
            actor=self.actor,
            server_tenants=tenants,
        )

    def _journal(self, provider: str):
        from penguinctl.state.journal import Journal

        journal = Journal(self.db, provider=provider, actor=self.actor, run_id=self._run_id)
        self._journals.append(journal)
        return journal

    def _owned(self, *, destroy: bool) -> list[ResourceKey]:
        shared_in_spec = {
            ("server", n) for n, d in self.specs.servers.items() if not d.metadata.tenant
        } | {
            ("dnsprovider", n) for n, d in self.specs.dns_providers.items() if not d.metadata.tenant
        }
        owned = []
        for key in self.recorded:
            if key.tenant or (destroy and (key.kind, key.name) in shared_in_spec):
                owned.append(key)
        return owned

    def _actual(self, refresh: bool) -> dict[ResourceKey, dict[str, Any]]:
        actual = dict(self.recorded)
        if not refresh:
            return actual
        self._check_keys(actual)
        for name in {r.provider for r in self.desired.values()}:
            if name.startswith("dns:") or name == "server:hostwinds":
                self.providers.get(name)  # credentials resolve at plan time, not mid-apply
        by_provider: dict[str, list[ResourceKey]] = defaultdict(list)
        # Only recorded resources are read: live data of one penguinctl never recorded would not
        # change the plan (it is created, overwriting whatever is there), so a first apply of
        # new zones reads nothing.
        for key in self.recorded:
            if key in self._foreign:
                continue
            name = (
                self.desired[key].provider if key in self.desired else self.recorded_providers[key]
            )
            if name.startswith(("dns:", "mail:")) or name == "server:hostwinds":
                by_provider[name].append(key)
        for name, keys in by_provider.items():
            live = self._read(name, sorted(keys))
            if live is None:
                continue
            for key in keys:
                if key in self.recorded:
                    if key in live:
                        actual[key] = live[key]
                    else:
                        actual.pop(key, None)
        return actual

    def _check_keys(self, actual: dict[ResourceKey, dict[str, Any]]) -> None:
        """Drift of secrets: a DKIM key whose private key is gone (or another key) shows as a
        change of its ``dkim`` resource (``plan.key_drift``)."""
        from penguinctl.plan import key_drift

        mine = {
            k: d for k, d in self.recorded.items() if k.kind == "dkim" and k not in self._foreign
        }
        if not mine:
            return
        for key, status in key_drift.dkim_drift(mine, self.providers.secrets).items():
            actual[key] = {**actual[key], key_drift.FIELD: status}
            self.warnings.append(key_drift.describe(key, status))

    def _read(self, name: str, keys: list[ResourceKey]) -> dict[ResourceKey, Any] | None:
        """Live data of ``keys``. When the provider fails, zone by zone: a zone that cannot be
        read keeps its recorded state (its apply will fail alone) and the plan says so."""
        provider = self.providers.get(name)
        if name == "server:hostwinds":
            return self._read_servers(provider, keys)
        if name.startswith("mail:"):
            return self._read_mail(name, provider, keys)
        try:
            return provider.read(keys)
        except PenguinError:
            if len({k.name.split("/", 1)[0] for k in keys}) <= 1:
                raise
        live: dict[ResourceKey, Any] = {}
        zones: dict[str, list[ResourceKey]] = defaultdict(list)
        for key in keys:
            zones[key.name.split("/", 1)[0]].append(key)
        for zone, zone_keys in sorted(zones.items()):
            try:
                found = provider.read(zone_keys)
            except PenguinError as exc:
                self.warnings.append(f"{zone}: live state not read ({exc}); using recorded state")
                found = {k: self.recorded[k] for k in zone_keys if k in self.recorded}
            if found is None:
                return None
            live.update(found)
        return live

    def _read_mail(self, name: str, provider, keys: list[ResourceKey]) -> dict[ResourceKey, Any]:
        """Live MailU domains, mailboxes and aliases of one server (three list calls). MailU
        unreachable: the recorded state is used and the plan says so."""
        recorded = {k: self.recorded[k] for k in keys if k in self.recorded}
        try:
            return provider.read_recorded(recorded)
        except PenguinError as exc:
            self.warnings.append(
                f"{name}: live MailU state not read ({exc.message}); using recorded state"
            )
            return recorded

    def _read_servers(self, provider, keys: list[ResourceKey]) -> dict[ResourceKey, Any]:
        """Live state of recorded Hostwinds servers; what changed outside shows as warnings
        (``server sync`` records it), a server terminated outside is planned again."""
        recorded = {k: self.recorded[k] for k in keys if k in self.recorded}
        live = provider.read_recorded(recorded)
        for key, data in recorded.items():
            now = live.get(key)
            if now is None:
                self.warnings.append(f"server/{key.name}: terminated outside penguinctl")
                continue
            if now.get("status") != "active":
                self.warnings.append(
                    f"server/{key.name}: status at Hostwinds is {now.get('status')}"
                )
            if now.get("ips") != data.get("ips"):
                was, got = ", ".join(data.get("ips") or []), ", ".join(now.get("ips") or [])
                self.warnings.append(
                    f"server/{key.name}: IPs changed at Hostwinds ({was} -> {got}); "
                    "run `penguinctl server sync`"
                )
        return live

    def plan(
        self, *, destroy: bool = False, targets: Iterable[str] = (), refresh: bool = True
    ) -> Plan:
        self._load_recorded()
        self.warnings = [
            f"{r.kind}/{r.name}: an unfinished order from {r.data.get('ordered_at', '?')} "
            "is pending; apply looks it up before ordering again"
            for r in self.pending
        ]
        from penguinctl.plan import confine

        owners = confine.recorded_owners(self.db)
        if not destroy:  # before anything is read or built: refuse what others own
            confine.check_ownership(self.specs, owners, self.zones_dir)
        # rows of this spec's tenants for things another tenant owns: never read live
        self._foreign = {k for k in self.recorded if owners.of_key(k) not in (None, k.tenant)}
        self.desired = {} if destroy else self._build_desired()
        if not destroy:
            from penguinctl.backup.offsite import spec_warnings

            self.warnings += spec_warnings(self.specs)
        self._check_graph()
        self.providers = self._providers()
        actual = self._actual(refresh)
        changes = diff(
            self.desired,
            actual,
            owned=self._owned(destroy=destroy),
            providers_of_actual=self.recorded_providers,
        )
        targets = list(targets)
        if targets:
            changes = self._select_targets(changes, targets)
        changes, confined = confine.confine(
            changes, owners, tenants=self.tenants, db=self.db, destroy=destroy
        )
        self.warnings += confined
        self._refuse_dropping_signing_keys(changes)
        existing = defaultdict(int)
        for key in self.recorded:
            if key.kind == "dnsrecord":
                existing[key.tenant] += 1
        return Plan(
            changes=changes,
            tenants=self.tenants,
            existing_records=dict(existing),
            operation="destroy" if destroy else "apply",
            domain_age_days={
                k: (self.today - ts.date()).days for k, ts in self.first_applied.items() if ts
            },
            warnings=list(self.warnings),
        )

    def _refuse_dropping_signing_keys(self, changes: list[Change]) -> None:
        """The key a domain signs with is never deleted or unpublished while the domain stays
        (``dkim rotate`` retires it first). Not even with --force: a plan doing so is refused."""
        deleted_domains = {
            c.key.name for c in changes if c.key.kind == "domain" and c.action is Action.DELETE
        }
        signing = {
            (data["domain"], data["selector"])
            for key, data in self.recorded.items()
            if key.kind == "dkim" and (data.get("phase") or "active") == "active"
        }
        dropped = []
        for c in changes:
            if c.key.kind == "dkim" and c.action is Action.DELETE:
                pair = ((c.before or {}).get("domain"), (c.before or {}).get("selector"))
            elif c.key.kind == "dnsrecord" and c.key.name.endswith("._domainkey/TXT"):
                zone, name, _ = c.key.name.split("/")
                pair = (zone, name.removesuffix("._domainkey"))
                values = (c.after or {}).get("values") or []
                revoked = any(v.replace(" ", "").endswith("p=") for v in values)
                if c.action is not Action.DELETE and not revoked:
                    continue
            else:
                continue
            if pair in signing and pair[0] not in deleted_domains:
                dropped.append(f"{pair[0]} selector {pair[1]}")
        if dropped:
            raise UnsafePlan(
                [f"removes or revokes the DKIM key {d} signs with" for d in dropped[:5]],
                hint="rotate first (`penguinctl dkim rotate DOMAIN`): the signing key is "
                "retired only after a new one is active",
            )

    def _check_graph(self) -> None:
        """No dependency cycle. When every dependency is of an earlier kind (``KIND_ORDER``)
        there cannot be one, and that check is linear and cheap; otherwise the full sort."""
        rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
        last = len(KIND_ORDER)
        if all(
            rank.get(dep.kind, last) < rank.get(key.kind, last)
            for key, res in self.desired.items()
            for dep in res.depends_on
        ):
            return
        sorter = TopologicalSorter({k: r.depends_on for k, r in self.desired.items()})
        try:
            sorter.prepare()
        except CycleError as exc:  # a bug in desired-state building, not a user error
            raise PenguinError(f"dependency cycle between resources: {exc.args[1]}") from None

    def _select_targets(self, changes: list[Change], targets: list[str]) -> list[Change]:
        """Keep changes of the targeted resources, what they depend on and what depends on them."""
        wanted: set[ResourceKey] = set()
        all_keys = set(self.desired) | set(self.recorded)
        for target in targets:
            kind, _, name = target.partition("/")
            matched = {k for k in all_keys if k.kind == kind and k.name == name}
            if not matched:
                raise UsageError(
                    f"--target {target}: no such resource in the spec or state",
                    hint="use KIND/NAME, e.g. domain/acme-mail.example",
                )
            wanted |= matched
        dependents: dict[ResourceKey, set[ResourceKey]] = defaultdict(set)
        for key, res in self.desired.items():
            for dep in res.depends_on:
                dependents[dep].add(key)
        stack = list(wanted)
        while stack:  # everything depending on a target
            for child in dependents.get(stack.pop(), ()):
                if child not in wanted:
                    wanted.add(child)
                    stack.append(child)
        for key in list(wanted):  # and what the targets need that is not there yet
            stack = [key]
            while stack:
                res = self.desired.get(stack.pop())
                for dep in res.depends_on if res else ():
                    if dep not in wanted:
                        wanted.add(dep)
                        stack.append(dep)
        for key in list(wanted):  # children recorded but no longer desired (deletes)
            for other in self.recorded:
                if other.tenant == key.tenant and other.name.startswith(key.name + "/"):
                    wanted.add(other)
        return [c for c in changes if c.key in wanted]

    # -- applying -----------------------------------------------------------------------------
    def close_interrupted_runs(self) -> int:
        """Mark runs left 'running' by a killed process as interrupted (call holding the lock)."""
        from penguinctl.state.models import utcnow

        with session_scope(self.db) as session:
            runs = repo.interrupted_runs(session, self.tenants or [""])
            for run in runs:
                run.status = "interrupted"
                run.finished_at = utcnow()
                session.add(run)
                for tenant in run.tenants or [""]:
                    audit.record(
                        session,
                        actor=self.actor,
                        tenant=tenant,
                        action="run.interrupted",
                        resource=f"run/{run.id}",
                        result="ok",
                        details={"pid": run.pid, "host": run.host, "actor": run.actor},
                    )
        return len(runs)

    def apply(
        self,
        plan: Plan,
        *,
        parallel: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> ApplyReport:
        """Apply ``plan``. Ownership is checked again against the state store as it is now,
        before the first side effect; an apply that creates names (a domain, server, mailbox,
        alias) holds the claims lock throughout, so two tenants' applies cannot both claim a
        name neither had recorded yet (the second one's check sees the first one's rows)."""
        from contextlib import ExitStack

        from penguinctl.plan import confine
        from penguinctl.state.lock import TenantLock

        with ExitStack() as stack:
            if confine.claims_names(plan.changes):
                stack.enter_context(
                    TenantLock(
                        self.db,
                        [confine.CLAIMS_LOCK],
                        operation="claim names",
                        actor=self.actor,
                        timeout=confine.CLAIMS_WAIT,
                    )
                )
            confine.guard(plan.changes, self.db)
            return self._apply(plan, parallel=parallel, progress=progress)

    def _apply(
        self,
        plan: Plan,
        *,
        parallel: int,
        progress: Callable[[int], None] | None,
    ) -> ApplyReport:
        with session_scope(self.db) as session:
            run = repo.start_run(
                session,
                operation=plan.operation,
                actor=self.actor,
                host=socket.gethostname(),
                pid=os.getpid(),
                tenants=plan.tenants,
                plan_checksum=plan.checksum(),
            )
            run_id = run.id
        self._run_id = run_id
        for journal in self._journals:
            journal.run_id = run_id
        report = ApplyReport(run_id=run_id)
        failed_keys: set[ResourceKey] = set()
        stages: dict[tuple[int, int], list[Change]] = defaultdict(list)
        for change in plan.changes:
            stages[_stage(change)].append(change)
        status = "failed"
        try:
            with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
                for stage in sorted(stages):
                    todo = self._refresh_computed(stages[stage])
                    ready = []
                    for change in todo:
                        res = self.desired.get(change.key)
                        if res and any(d in failed_keys for d in res.depends_on):
                            report.skipped.append(change)
                            failed_keys.add(change.key)
                        else:
                            ready.append(change)
                    self._run_stage(pool, ready, run_id, report, failed_keys, progress)
                    if progress and len(todo) > len(ready):
                        progress(len(todo) - len(ready))
            status = "ok" if report.ok else ("partial" if report.applied else "failed")
        except BaseException:
            status = "partial" if report.applied else "failed"
            raise
        finally:
            from penguinctl.events.hooks import domains_applied

            domains = {k.name for k in (*self.desired, *self.recorded) if k.kind == "domain"}
            with session_scope(self.db) as session:
                repo.finish_run(session, run_id, status=status, summary=report.to_json())
                domains_applied(  # with the run's end: one event per domain it changed
                    session,
                    applied=report.applied,
                    failed=[c for c, _ in report.failed],
                    domains=domains,
                    operation=plan.operation,
                    run_id=run_id,
                )
        return report

    def _refresh_computed(self, changes: list[Change]) -> list[Change]:
        """Replace values only known after earlier stages (DKIM public keys) with real ones."""
        if not any(c.after and Resource(c.key, c.after).has_computed() for c in changes):
            return changes
        self.desired = self._build_desired()
        out = []
        for c in changes:
            if c.after is not None and c.key in self.desired:
                c = Change(c.action, c.key, c.provider, c.before, self.desired[c.key].data)
            out.append(c)
        return out

    def _run_stage(self, pool, changes, run_id, report, failed_keys, progress) -> None:
        """Run a stage's batches on ``pool``, at most ``provider.max_parallel`` at a time for each
        provider (a DNS server or API is not hammered whatever ``--parallel`` says)."""
        batches: dict[tuple[str, Any], list[Change]] = defaultdict(list)
        for change in changes:
            provider = self.providers.get(change.provider)
            batches[(change.provider, provider.batch_key(change))].append(change)
        queues: dict[str, deque[list[Change]]] = defaultdict(deque)
        for (pname, _), batch in batches.items():
            for i in range(0, len(batch), MAX_BATCH):
                queues[pname].append(batch[i : i + MAX_BATCH])
        running: dict[str, int] = defaultdict(int)
        futures: dict[Future, tuple[str, list[Change]]] = {}

        def fill() -> None:
            for pname, queue in queues.items():
                provider = self.providers.get(pname)
                limit = provider.max_parallel or len(queue) + running[pname]
                while queue and running[pname] < limit:
                    chunk = queue.popleft()
                    futures[pool.submit(provider.apply_batch, chunk)] = (pname, chunk)
                    running[pname] += 1

        fill()
        pending = set(futures)
        succeeded: list[ChangeResult] = []  # finished, not recorded yet
        due = 0.0  # when `succeeded` must be recorded (monotonic clock)
        try:
            while pending:
                timeout = max(0.0, due - time.monotonic()) if succeeded else None
                done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
                finished = [(fut, *futures.pop(fut)) for fut in done]
                for _, pname, _ in finished:
                    running[pname] -= 1
                fill()  # keep providers busy while this thread records what finished
                for fut, pname, chunk in finished:
                    try:
                        results = fut.result()
                    except Exception as exc:
                        if len(chunk) > 1 and self.providers.get(pname).isolate_failures:
                            # unrelated changes batched for speed: retry them one by one so
                            # one bad change fails alone (providers are idempotent)
                            queues[pname].extendleft([c] for c in reversed(chunk))
                            continue
                        msg = (
                            str(exc)
                            if isinstance(exc, PenguinError)
                            else (
                                f"{type(exc).__name__}: {exc}"  # a provider bug: record, carry on
                            )
                        )
                        self._record_failure(chunk, msg, run_id, report, failed_keys)
                        if progress:
                            progress(len(chunk))
                    else:
                        if not succeeded:
                            due = time.monotonic() + RECORD_SECONDS
                        succeeded.extend(results)
                fill()  # chunks re-queued one change at a time
                pending = set(futures)
                # one transaction for everything that finished meanwhile
                if succeeded and (
                    not pending or len(succeeded) >= RECORD_CHANGES or time.monotonic() >= due
                ):
                    self._record_success(succeeded, run_id, report)
                    if progress:
                        progress(len(succeeded))
                    succeeded = []
                    fill()
                    pending = set(futures)
        except BaseException:
            for fut in futures:
                fut.cancel()
            if succeeded:  # what is done is recorded if the state store lets us
                with contextlib.suppress(Exception):
                    self._record_success(succeeded, run_id, report)
            raise

    def _record_success(self, results: list[ChangeResult], run_id, report) -> None:
        with session_scope(self.db) as session:
            record_results(session, results, actor=self.actor, run_id=run_id)
        for res in results:
            ch = res.change
            if ch.action is Action.DELETE:
                self.recorded.pop(ch.key, None)
            else:
                self.recorded[ch.key] = res.data
            report.applied.append(ch)

    def _record_failure(self, chunk, message, run_id, report, failed_keys) -> None:
        with session_scope(self.db) as session:
            for ch in chunk:
                audit_change(
                    session,
                    ch,
                    actor=self.actor,
                    result="failed",
                    run_id=run_id,
                    details={"error": message[:500]},
                )
        for ch in chunk:
            report.failed.append((ch, message))
            failed_keys.add(ch.key)


def raise_for_report(report: ApplyReport) -> None:
    if report.ok:
        return
    from penguinctl.errors import PartialApply

    first_change, first_error = report.failed[0] if report.failed else (report.skipped[0], "")
    where = first_change.key.address
    n_fail, n_skip = len(report.failed), len(report.skipped)
    msg = f"{n_fail} change(s) failed, {n_skip} skipped; first: {where}: {first_error}"
    hint = "fix the cause and run apply again; applied changes are recorded"
    if report.applied:
        raise PartialApply(msg, hint=hint)
    raise ProviderError(msg, hint=hint)


__all__ = ["COMPUTED", "ApplyReport", "Engine", "raise_for_report", "spec_tenants"]
