"""``/healthz`` (the process answers) and ``/readyz`` (the state store is reachable, its schema
is current, and the scheduler is leader or standing by)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    import sqlalchemy as sa

    from penguinctl.state.db import _head_from_files, _stored_revision

    state = request.app.state.web
    checks: dict[str, str] = {}
    ready = True
    try:
        with state.db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["state_store"] = "ok"
        stored, head = _stored_revision(state.db), _head_from_files()
        checks["migrations"] = "ok" if stored == head else f"at {stored}, code expects {head}"
        ready = stored == head
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        checks["state_store"] = f"unreachable: {reason}"
        ready = False
    role = state.role()
    checks["scheduler"] = role
    ready = ready and role in ("leader", "standby")
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
