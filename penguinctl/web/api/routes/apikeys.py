"""API keys over the API: a tenant ``owner`` manages its tenant's keys, a platform ``admin``
any key. Another tenant's key answers 404, like a missing one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from penguinctl.identity.principal import Principal
from penguinctl.web.api.deps import ERRORS, allow
from penguinctl.web.api.pages import Page, PageParams, page_list, page_params

router = APIRouter(tags=["apikeys"], responses=ERRORS)
MANAGE = Depends(allow("keys.manage"))


class NewKey(BaseModel):
    role: str = Field(max_length=20)
    tenant: str | None = Field(None, max_length=63, description="Platform keys only")
    name: str = Field("", max_length=200)
    expires: str | None = Field(None, max_length=12, description="Lifetime: 90d, 12w")


class Rotation(BaseModel):
    overlap: str = Field("24h", max_length=12)


def _duration(text: str, what: str) -> Any:
    from penguinctl.errors import UsageError
    from penguinctl.spec.durations import Duration

    try:
        return Duration(text)
    except ValueError as exc:
        raise UsageError(f"{what} {text!r}: {exc}") from None


def _db(request: Request) -> Any:
    return request.app.state.web.db


@router.get("/apikeys", summary="API keys", response_model=Page)
def list_keys(
    request: Request, params: PageParams = Depends(page_params), who: Principal = MANAGE
) -> dict[str, Any]:
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    with session_scope(_db(request)) as session:
        found = [k.to_json() for k in keys.list_keys(session, tenant=who.tenant)]
    return page_list(found, params, key=lambda k: [k["id"]])


@router.post("/apikeys", summary="Create an API key (its token is in the answer, once)",
             status_code=201)  # fmt: skip
def create_key(request: Request, body: NewKey, who: Principal = MANAGE) -> dict[str, Any]:
    from penguinctl.errors import Forbidden, UsageError
    from penguinctl.identity import keys
    from penguinctl.spec.names import check_name
    from penguinctl.state.db import session_scope

    tenant = who.tenant if who.tenant is not None else (body.tenant or "")
    if who.tenant is not None and body.tenant not in (None, who.tenant):
        raise Forbidden("a tenant key creates keys of its own tenant only")
    if tenant:
        try:
            check_name(tenant)
        except ValueError as exc:
            raise UsageError(f"tenant: {exc}") from None
    lifetime = _duration(body.expires, "expires") if body.expires else None
    with session_scope(_db(request)) as session:
        key, token = keys.create(
            session, tenant=tenant, role=body.role, actor=who.actor, name=body.name,
            expires_in=lifetime,
        )  # fmt: skip
        return {**key.to_json(), "token": token}


@router.post("/apikeys/{key_id}/rotate", summary="A new secret for a key (old one overlaps)")
def rotate_key(
    request: Request, key_id: str, body: Rotation, who: Principal = MANAGE
) -> dict[str, Any]:
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    overlap = _duration(body.overlap, "overlap")
    with session_scope(_db(request)) as session:
        key, token = keys.rotate(
            session, key_id, actor=who.actor, overlap=overlap, tenant=who.tenant
        )
        return {**key.to_json(), "token": token}


@router.delete("/apikeys/{key_id}", summary="Revoke a key")
def revoke_key(request: Request, key_id: str, who: Principal = MANAGE) -> dict[str, Any]:
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    with session_scope(_db(request)) as session:
        return keys.revoke(session, key_id, actor=who.actor, tenant=who.tenant).to_json()
