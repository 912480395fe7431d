"""Diff desired resources against actual ones (recorded, overlaid with live reads)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from penguinctl.plan.changes import Action, Change
from penguinctl.resources import Resource, ResourceKey


def comparable(resource: Resource) -> dict[str, Any]:
    """The fields that decide whether a resource needs an update (outputs excluded)."""
    return {k: v for k, v in resource.data.items() if k not in resource.outputs}


def diff(
    desired: Mapping[ResourceKey, Resource],
    actual: Mapping[ResourceKey, dict[str, Any]],
    *,
    owned: Iterable[ResourceKey],
    providers_of_actual: Mapping[ResourceKey, str],
) -> list[Change]:
    """Creates and updates for ``desired``; deletes for ``owned`` keys that are no longer desired.

    ``actual`` maps keys to their current data (from the state store, replaced by what the
    provider reads live where it can). Only keys in ``owned`` (recorded by penguinctl, in scope)
    are ever deleted.
    """
    changes: list[Change] = []
    for key, res in desired.items():
        want = comparable(res)
        have = actual.get(key)
        if have is None:
            changes.append(Change(Action.CREATE, key, res.provider, None, res.data))
            continue
        have_cmp = {k: v for k, v in have.items() if k not in res.outputs}
        if have_cmp != want:
            after = dict(res.data)
            for field in res.outputs:
                if field in have:
                    after[field] = have[field]
            changes.append(Change(Action.UPDATE, key, res.provider, have, after))
    for key in owned:
        if key not in desired:
            before = actual.get(key)
            changes.append(
                Change(Action.DELETE, key, providers_of_actual.get(key, "state"), before, None)
            )
    changes.sort(key=Change.sort_key)
    return changes
