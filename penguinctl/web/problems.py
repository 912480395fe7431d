"""Errors as RFC 9457 problem documents; ``type`` names the CLI's exit-code class.

``TYPES`` maps an HTTP status to its default type; ``for_error`` maps a ``PenguinError`` class to
its status and type (one stable type per class, with the CLI's exit code as the ``exit_code``
extension member), so an API client and a CI script branch on the same classes."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

URN = "urn:penguinctl:problem:"
TYPES = {
    400: URN + "usage",
    401: URN + "unauthorized",
    403: URN + "forbidden",
    404: URN + "not-found",
    405: URN + "method-not-allowed",
    409: URN + "conflict",
    413: URN + "too-large",
    422: URN + "usage",
    429: URN + "rate-limited",
    500: URN + "unexpected",
    503: URN + "unavailable",
}
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_ or TYPES.get(status, "about:blank"), "title": title}
    body["status"] = status
    if detail:
        body["detail"] = detail
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _classes() -> list[tuple[type, int, str, str]]:
    """(error class, HTTP status, type suffix, title): the most specific class first."""
    from penguinctl import errors as e

    return [
        (e.Unauthenticated, 401, "unauthorized", "Not authenticated"),
        (e.Forbidden, 403, "forbidden", "Not allowed"),
        (e.RateLimited, 429, "rate-limited", "Too many requests"),
        (e.NotFound, 404, "not-found", "Not found"),
        (e.NoState, 503, "unavailable", "No state store"),
        (e.StateConfigError, 503, "unavailable", "State store unavailable"),
        (e.SpecError, 422, "spec-invalid", "Spec invalid"),
        (e.UnsafePlan, 409, "unsafe-plan", "Unsafe plan"),
        (e.LockHeld, 409, "lock-held", "Lock held"),
        (e.ChecksumMismatch, 409, "checksum-mismatch", "Plan checksum mismatch"),
        (e.PartialApply, 502, "partial-apply", "Partial apply"),
        (e.CheckFailed, 502, "check-failed", "Check failed"),
        (e.ProviderError, 502, "provider", "Provider or remote error"),
        (e.SecretError, 502, "provider", "Secrets backend error"),
        (e.UsageError, 400, "usage", "Bad request"),
        (e.ConfigError, 400, "usage", "Bad request"),
        (e.StateError, 500, "unexpected", "State store error"),
    ]


def anonymous(exc: Exception) -> Exception:
    """``exc`` as a tenant's key may read it: an ownership conflict without the owner's name."""
    from penguinctl.errors import SpecError, SpecIssue
    from penguinctl.plan.confine import OwnershipConflict

    if not isinstance(exc, OwnershipConflict):
        return exc
    issues = [SpecIssue(c.issue().location, c.anonymous()) for c in exc.conflicts]
    other = SpecError(issues)
    other.hint = exc.hint
    return other


def for_error(exc: Exception, *, reveal_owner: bool = True) -> JSONResponse:
    """The problem document for ``exc`` (a ``PenguinError``; anything else is 500). Without
    ``reveal_owner`` (a tenant's key asked) an ownership conflict does not name the owner."""
    from penguinctl.errors import ExitCode, PenguinError, SpecError
    from penguinctl.masking import mask

    if not reveal_owner:
        exc = anonymous(exc)

    if not isinstance(exc, PenguinError):
        return problem(500, "Internal error", "the error is in the server log", exit_code=1)
    status, suffix, title = 500, "unexpected", "Internal error"
    for cls, s, t, ti in _classes():
        if isinstance(exc, cls):
            status, suffix, title = s, t, ti
            break
    extensions: dict[str, Any] = {"exit_code": int(getattr(exc, "exit_code", ExitCode.UNEXPECTED))}
    if exc.hint:
        extensions["hint"] = mask(exc.hint)
    if isinstance(exc, SpecError):
        extensions["errors"] = [
            {
                "file": i.location.file,
                "line": i.location.line,
                "col": i.location.col,
                "message": mask(i.message),
            }
            for i in exc.issues
        ]
    headers = None
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers = {"Retry-After": str(retry)}
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="penguinctl"'}
    return problem(
        status, title, mask(exc.message), type_=URN + suffix, headers=headers, **extensions
    )
