"""Inbound webhooks: ``POST /hooks/stripe``, verified with the ``stripe`` library's signature
check (``Stripe-Signature``, HMAC-SHA256 with the endpoint's ``whsec_`` secret, 5-minute
tolerance) and applied once per event id (``billing.webhook``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from penguinctl.web.problems import problem

router = APIRouter(tags=["hooks"])
TOLERANCE = 300


@router.post("/hooks/stripe")
async def stripe_hook(request: Request) -> Response:
    import stripe

    from penguinctl.billing.webhook import apply_event

    state = request.app.state.web
    secret = await run_in_threadpool(state.stripe_webhook_secret)
    if not secret:
        return problem(
            503,
            "Stripe webhook not configured",
            "set STRIPE_WEBHOOK_SECRET (or platform/providers/stripe webhook_secret)",
        )
    signature = request.headers.get("stripe-signature")
    if not signature:
        return problem(400, "Missing Stripe-Signature header")
    payload = await request.body()
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=TOLERANCE)
    except stripe.SignatureVerificationError:
        return problem(400, "Signature does not verify")
    except ValueError:
        return problem(400, "Payload is not a Stripe event")
    data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
    result = await run_in_threadpool(apply_event, state.db, data, state.clock.now())
    return JSONResponse({"received": True, "id": data.get("id"), "result": result})
