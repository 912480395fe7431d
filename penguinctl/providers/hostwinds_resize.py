"""In-place resize of a Hostwinds instance to another plan (``rid``): the documented upgrade
workflow of the Cloud API (hostwinds.md 1.3), used by the ``hostwinds`` provider's updates."""

from __future__ import annotations

from typing import Any

from penguinctl.errors import ProviderError
from penguinctl.providers.hostwinds_errors import HostwindsApiError
from penguinctl.resources import ResourceKey


def resize(p: Any, key: ResourceKey, sid: int, inst: dict[str, Any], rid: int) -> dict:
    """The documented upgrade workflow, resumable at every step: an instance already
    ``RESIZED`` is confirmed; a pending order (ours, from a run that stopped) is carried
    on, never ordered twice; else ``upgrade_instance`` orders the plan. Then
    ``upgrade_server``, wait for ``RESIZED``, ``confirm_upgrade``, wait for active. A plan
    the API cannot reach in place (a smaller disk) is refused: it needs a new server."""
    status = str(inst.get("status") or "").lower()
    if status != "resized":
        pending = p._call(key, p.client.check_upgrade_order, sid)
        if pending is None:
            try:
                p.client.upgrade_instance(sid, rid)
            except HostwindsApiError as exc:
                raise ProviderError(
                    f"{key}: Hostwinds cannot move instance {sid} to plan rid {rid} in place:"
                    f" {exc.message}",
                    hint=f"a smaller plan needs a new server: `penguinctl server rebuild "
                    f"{key.name} -f SPEC --allow-rebuild` orders one with it, restores the "
                    "verified backup onto it and moves DNS",
                ) from None
        p._call(key, p.client.check_upgrade_reboot, sid)
        p._call(key, p.client.upgrade_server, sid)
        deadline = p._clock() + p.poll_timeout
        while str(inst.get("status") or "").lower() != "resized":
            if p._clock() > deadline:
                raise ProviderError(
                    f"{key}: instance {sid} did not reach RESIZED in time",
                    hint="re-run apply: the resize resumes",
                )
            p._sleep(p.poll_interval)
            inst = p._call(key, p.client.get_instance, sid)
    p._call(key, p.client.confirm_upgrade, sid)
    return p.wait_until_active(key, sid)
