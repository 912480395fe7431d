"""The Hostwinds side of ``server rebuild``: order the replacement (never twice), move the label,
retire the old instance.

- ``order``: the replacement is labelled ``<label>-r<stamp>`` (chosen when the rebuild starts,
  kept in its journal) and ordered through the ``hostwinds`` provider with the lost server's
  ``template``/``rid``/``location_id``/``billingcycle``; its intent goes into the rebuild's
  journal first, so after a crash the instance is found by its label, never ordered again. The
  provider sets the reverse DNS (PTR) of its main IP to the server's hostname.
- ``relabel``: at cutover the old instance (if Hostwinds still has it) becomes
  ``<label>-retired`` and the replacement takes the server's own label, so ``apply`` adopts it.
- ``retire``: with ``--force`` the old instance is terminated; without, it is left running
  (labelled retired) and the output says so.
"""

from __future__ import annotations

from typing import Any

from penguinctl.plan.changes import Action, Change
from penguinctl.resources import ResourceKey


class RowJournal:
    """The provider's intent journal, kept in the rebuild's ``replacement`` column."""

    def __init__(self, rb: Any) -> None:
        self.rb = rb

    def _save(self) -> None:
        from penguinctl.recovery.tables import ServerRebuild

        t = ServerRebuild.__table__
        with self.rb.app.db.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == self.rb.row["id"])
                .values(replacement=self.rb.row["replacement"])
            )

    def get(self, key: ResourceKey) -> dict[str, Any] | None:
        return self.rb.row["replacement"].get("intent")

    def mark(self, key: ResourceKey, data: dict[str, Any]) -> None:
        self.rb.row["replacement"] = {**self.rb.row["replacement"], "intent": dict(data)}
        self._save()

    def clear(self, key: ResourceKey) -> None:
        rep = dict(self.rb.row["replacement"])
        rep.pop("intent", None)
        self.rb.row["replacement"] = rep
        self._save()


def _client(rb: Any):
    from penguinctl.providers.registry import hostwinds_client

    return hostwinds_client(rb.app.env, rb.app.secrets())


def order(rb: Any) -> dict[str, Any]:
    from penguinctl.providers.hostwinds import HostwindsProvider
    from penguinctl.providers.registry import _seconds

    old, rep = rb.old, rb.row["replacement"]
    after = {
        "provider": "hostwinds",
        "hostname": old["hostname"],
        "hostwinds": rep.get("hostwinds") or old["hostwinds"],
        "srvrname": rep["srvrname"],
        "mail": old.get("mail"),
        "ips": [],
    }
    env = rb.app.env
    with _client(rb) as client:
        provider = HostwindsProvider(
            "server:hostwinds",
            client=client,
            journal=RowJournal(rb),
            poll_interval=_seconds(env, "HOSTWINDS_POLL_INTERVAL", 30.0),
            poll_timeout=_seconds(env, "HOSTWINDS_POLL_TIMEOUT", 1800.0),
        )
        key = ResourceKey("server", rb.tenant, rb.server)
        [res] = provider.apply_batch([Change(Action.CREATE, key, "server:hostwinds", None, after)])
    data = dict(res.data or {})
    rb.row["replacement"] = {
        **{k: v for k, v in rep.items() if k != "intent"},
        **{
            k: data.get(k)
            for k in ("service_id", "main_ip", "ips", "rdns", "monthly_cost", "ordered_at")
        },
    }
    return {
        "summary": f"Hostwinds instance {data.get('service_id')} ({rep['srvrname']}, "
        f"{data.get('main_ip')}) {res.detail.split(' ', 1)[0]}; PTR {data.get('rdns')}",
        "service_id": data.get("service_id"),
        "address": data.get("main_ip"),
    }


def relabel(rb: Any, canonical: str) -> list[str]:
    from penguinctl.providers.hostwinds_client import HostwindsInvalidService

    done = []
    old_sid, new_sid = rb.old.get("service_id"), rb.row["replacement"]["service_id"]
    with _client(rb) as client:
        if old_sid and int(old_sid) != int(new_sid):
            try:
                inst = client.get_instance(int(old_sid))
                if inst.get("srvrname") == canonical:
                    client.edit_instance(int(old_sid), f"{canonical}-retired")
                    done.append(f"old instance {old_sid} labelled {canonical}-retired")
            except HostwindsInvalidService:
                done.append(f"old instance {old_sid} is gone at Hostwinds")
        inst = client.get_instance(int(new_sid))
        if inst.get("srvrname") != canonical:
            client.edit_instance(int(new_sid), canonical)
            done.append(f"instance {new_sid} labelled {canonical}")
    return done


def retire(rb: Any, *, force: bool) -> dict[str, Any]:
    from penguinctl.providers.hostwinds_client import HostwindsInvalidService, HostwindsLocked

    old_sid = rb.old.get("service_id")
    if not old_sid:
        return {"summary": "no old Hostwinds instance recorded: nothing to retire"}
    if not force:
        return {
            "summary": f"old instance {old_sid} left running, labelled retired (terminate it "
            "with `server rebuild --force` or in the Hostwinds portal)",
            "terminated": False,
        }
    with _client(rb) as client:
        try:
            client.terminate(int(old_sid))
        except HostwindsInvalidService:
            return {"summary": f"old instance {old_sid} was already gone", "terminated": True}
        except HostwindsLocked:
            from penguinctl.errors import UnsafePlan

            raise UnsafePlan(
                f"old Hostwinds instance {old_sid} is locked: not terminated",
                hint="unlock it in the portal (Toggle Lock) and re-run, or terminate it there",
            ) from None
    return {"summary": f"old instance {old_sid} terminated", "terminated": True}
