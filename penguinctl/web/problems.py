"""Errors as RFC 9457 problem documents; ``type`` names the CLI's exit-code class."""

from __future__ import annotations

from fastapi.responses import JSONResponse

TYPES = {
    400: "urn:penguinctl:problem:usage",
    401: "urn:penguinctl:problem:unauthorized",
    404: "urn:penguinctl:problem:not-found",
    409: "urn:penguinctl:problem:conflict",
    503: "urn:penguinctl:problem:unavailable",
}


def problem(status: int, title: str, detail: str | None = None) -> JSONResponse:
    body = {"type": TYPES.get(status, "about:blank"), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
