"""``GET /me``: the calling key (id, role, tenant) and what its role may do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from penguinctl.identity.principal import Principal
from penguinctl.web.api.deps import ERRORS, allow

router = APIRouter(tags=["identity"], responses=ERRORS)


@router.get("/me", summary="The calling key, its role and permissions")
def me(who: Principal = Depends(allow("read"))) -> dict[str, Any]:
    from penguinctl.identity.permissions import MATRIX

    return {
        "key": who.key_id,
        "actor": who.actor,
        "role": who.role,
        "tenant": who.tenant,
        "allowed": [a for a in MATRIX if who.can(a)],
    }
