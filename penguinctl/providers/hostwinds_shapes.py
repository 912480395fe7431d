"""Reading Hostwinds' answers: error items, the payload of a success, list items in any of the
shapes the API uses, IP addresses wherever they appear, and every ``password`` field removed."""

from __future__ import annotations

import ipaddress
from typing import Any


def form(params: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        out[name] = str(value)
    return out


def error_items(body: Any) -> list[tuple[str, str, str | None]]:
    """(action label, message, ERROR code) of every ``result: error`` item of the body."""
    candidates = body if isinstance(body, list) else [body]
    out: list[tuple[str, str, str | None]] = []
    for item in candidates:
        if isinstance(item, dict) and str(item.get("result", "")).lower() == "error":
            code = item.get("ERROR")
            out.append(
                (
                    str(item.get("action") or ""),
                    str(item.get("message") or ""),
                    None if code in (None, "") else str(code),
                )
            )
    return out


def is_auth(message: str) -> bool:
    return "not authorized" in message.lower()


def unwrap(body: Any) -> Any:
    """The payload of a success answer: ``{"success": X}`` is X; anything else is itself."""
    if isinstance(body, dict) and "success" in body:
        return body["success"]
    return body


def scrub(value: Any) -> Any:
    """``value`` without any ``password`` field, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if str(k).lower() != "password"}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def dicts(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        return [result]
    if isinstance(result, list):
        return [item for item in result if isinstance(item, dict)]
    return []


def items(result: Any, *, id_field: str) -> list[dict[str, Any]]:
    """A list action's items from a bare array, ``{"success": [...]}`` (already unwrapped), one
    object, or an object keyed by id (the id then fills ``id_field`` when missing)."""
    if result is True or result is None:
        return []
    if isinstance(result, list):
        return [item for item in result if isinstance(item, dict)]
    if isinstance(result, dict):
        if id_field in result or "id" in result:
            return [result]
        out = []
        for key, item in result.items():
            if isinstance(item, dict):
                if id_field not in item and str(key).isdecimal():
                    item = {**item, id_field: int(key)}
                out.append(item)
        return out
    return []


def message(result: Any) -> str:
    """The joined ``message`` of result items ("" for ``true``)."""
    return "; ".join(str(item.get("message", "")) for item in dicts(result) if item.get("message"))


def ip_items(result: Any) -> list[dict[str, Any]]:
    """``result`` as one item per address (``{"ip": ..., **fields}``), each address once."""
    if isinstance(result, list):
        elements = result
    elif isinstance(result, dict) and result and all(isinstance(v, dict) for v in result.values()):
        elements = list(result.values())
    else:
        elements = [result]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for element in elements:
        found: list[dict[str, Any]] = []
        if isinstance(element, dict):
            for field in ("ip", "ipaddress", "address"):
                addrs = (
                    ip_addresses(element.get(field)) if isinstance(element.get(field), str) else []
                )
                if addrs:
                    found = [{**element, "ip": addrs[0]}]
                    break
        if not found:
            found = [{"ip": ip} for ip in ip_addresses(element)]
        for item in found:
            if item["ip"] not in seen:
                seen.add(item["ip"])
                out.append(item)
    return out


def ip_addresses(value: Any) -> list[str]:
    """Every IP address in ``value`` (strings, comma-separated strings, lists, objects), in
    order of appearance, each once, in canonical form."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, str):
            for part in v.replace(";", ",").split(","):
                try:
                    ip = str(ipaddress.ip_address(part.strip()))
                except ValueError:
                    continue
                if ip not in found:
                    found.append(ip)

    walk(value)
    return found
