"""Client mode: with ``PENGUINCTL_API_URL`` and ``PENGUINCTL_API_KEY`` set, the read commands
(``get``, ``describe``, ``campaign status/stats``, ``jobs``, ``events list``) and ``plan``/
``apply`` go through the HTTP API instead of the state store, so a CI job needs only a key.

Problem documents come back as the same error classes (and so the same exit codes) the command
raises locally; 429 answers are retried after their ``Retry-After`` (a few times)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from penguinctl import errors

MAX_RETRIES = 5
TIMEOUT = 60.0
_CLASSES: dict[str, type[errors.PenguinError]] = {
    "usage": errors.UsageError,
    "unauthorized": errors.Unauthenticated,
    "forbidden": errors.Forbidden,
    "not-found": errors.NotFound,
    "unsafe-plan": errors.UnsafePlan,
    "lock-held": errors.LockHeld,
    "checksum-mismatch": errors.ChecksumMismatch,
    "partial-apply": errors.PartialApply,
    "check-failed": errors.CheckFailed,
    "provider": errors.ProviderError,
    "unavailable": errors.StateConfigError,
    "too-large": errors.UsageError,
    "rate-limited": errors.ProviderError,
}


def configured(env: Mapping[str, str]) -> bool:
    return bool(env.get("PENGUINCTL_API_URL"))


def from_env(env: Mapping[str, str]) -> ApiClient | None:
    """The client when ``PENGUINCTL_API_URL`` is set (None otherwise); the key is required."""
    url = env.get("PENGUINCTL_API_URL")
    if not url:
        return None
    key = env.get("PENGUINCTL_API_KEY")
    if not key:
        raise errors.ConfigError(
            "PENGUINCTL_API_URL is set but PENGUINCTL_API_KEY is not",
            hint="export PENGUINCTL_API_KEY=pgk_... (or unset PENGUINCTL_API_URL)",
        )
    return ApiClient(url, key)


def error_from_problem(body: Any, status: int) -> errors.PenguinError:
    """The local error a problem document stands for (same class, same exit code)."""
    if not isinstance(body, dict):
        return errors.ProviderError(f"the API answered {status} without a problem document")
    kind = str(body.get("type", "")).rsplit(":", 1)[-1]
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    hint = body.get("hint")
    if kind == "spec-invalid":
        issues = [
            errors.SpecIssue(
                errors.Location(
                    str(e.get("file", "?")), int(e.get("line") or 0), int(e.get("col") or 0)
                ),
                str(e.get("message", "")),
            )
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        if issues:
            return errors.SpecError(issues)
    if kind == "unsafe-plan":
        return errors.UnsafePlan([detail.removeprefix("unsafe plan: ")], hint=hint)
    cls = _CLASSES.get(kind)
    if cls is None:
        err = errors.PenguinError(f"API: {detail}", hint=hint)
        return err
    return cls(detail, hint=hint)


class ApiClient:
    def __init__(self, url: str, key: str) -> None:
        import httpx

        self.base = url.rstrip("/") + "/api/v1"
        self.http = httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "penguinctl-client"},
            timeout=TIMEOUT,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        for attempt in range(MAX_RETRIES + 1):
            try:
                res = self.http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise errors.ProviderError(
                    f"API {self.base} unreachable: {type(exc).__name__}: {exc}",
                    hint="check PENGUINCTL_API_URL",
                ) from None
            if res.status_code == 429 and attempt < MAX_RETRIES:
                time.sleep(min(float(res.headers.get("retry-after", "1") or 1), 30.0))
                continue
            break
        if res.status_code >= 400:
            try:
                body = res.json()
            except ValueError:
                body = None
            raise error_from_problem(body, res.status_code)
        return res.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def items(self, path: str, *, limit: int = 500, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list."""
        cursor = None
        while True:
            page = self.get(path, limit=limit, cursor=cursor, **params)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- plan / apply ---------------------------------------------------------------------
    def plan(self, files: Mapping[str, str], *, targets: list[str], destroy: bool = False,
             refresh: bool = True) -> dict[str, Any]:  # fmt: skip
        return self.post(
            "/plans",
            {"files": dict(files), "targets": targets, "destroy": destroy, "refresh": refresh},
        )

    def apply(self, plan: Mapping[str, Any], *, force: bool = False, parallel: int = 4,
              poll: float = 0.5, timeout: float = 6 * 3600) -> dict[str, Any]:  # fmt: skip
        """Apply a plan made by ``plan`` and wait for its job: the plan's final record."""
        started = self.post(
            f"/plans/{plan['id']}/apply",
            {"checksum": plan["checksum"], "force": force, "parallel": parallel},
        )
        status_url = started["status_url"].removeprefix("/api/v1")
        end = time.monotonic() + timeout
        while True:
            found = self.get(status_url)
            if found["status"] in ("applied", "no-op", "failed"):
                return found
            if time.monotonic() > end:
                raise errors.ProviderError(f"plan {plan['id']} still {found['status']}")
            time.sleep(poll)


def read_spec_files(paths: list[Any]) -> dict[str, str]:
    """The spec files (or directories' *.yaml/*.yml) as ``{path as given: text}``."""
    from pathlib import Path

    from penguinctl.spec.loader import discover

    if not paths:
        raise errors.UsageError("no spec given", hint="pass -f FILE or -f DIRECTORY")
    files, issues = discover([Path(p) for p in paths])
    if issues:
        raise errors.SpecError(issues)
    out: dict[str, str] = {}
    for f in files:
        try:
            out[f.shown] = f.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise errors.UsageError(f"cannot read {f.shown}: {exc}") from None
    return out


def raise_for_apply(record: Mapping[str, Any]) -> None:
    """Raise what the apply job's recorded problem stands for (nothing when it succeeded)."""
    if record["status"] != "failed":
        return
    problem = (record.get("result") or {}).get("problem")
    raise error_from_problem(problem, (problem or {}).get("status", 500))
