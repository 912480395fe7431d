"""serve's listening socket, through the real uvicorn server ``serve`` runs (``make_server``
with ``sockets=[listen_socket(...)]``): every accepted connection has Nagle's algorithm off.

With it on, a response written in two parts (head, body) waited for the client's delayed ACK:
about 40 ms a request on a keep-alive connection (bench/README.md, "HTTP API")."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from penguinctl.errors import UsageError
from penguinctl.web.server import listen_socket, make_server


async def _app(scope, receive, send) -> None:  # never reached: the request stays unfinished
    raise AssertionError("no request is completed")


def _accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY of the server's side of one connection to ``sock``."""
    server = make_server(_app, "127.0.0.1", sock.getsockname()[1])
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    client = None
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        client = socket.create_connection(sock.getsockname(), timeout=10)
        client.sendall(b"GET / HTTP/1.1\r\n")  # a head not finished: the connection stays open
        while not server.server_state.connections:
            assert time.monotonic() < deadline, "the connection was not accepted"
            time.sleep(0.01)
        (protocol,) = list(server.server_state.connections)
        accepted = protocol.transport.get_extra_info("socket")
        return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        if client is not None:
            client.close()
        server.should_exit = True
        thread.join(timeout=30)


def test_serve_connections_have_nagle_off() -> None:
    sock = listen_socket("127.0.0.1", 0, "127.0.0.1:0")
    assert _accepted_nodelay(sock) != 0


def test_the_check_can_fail_a_socket_without_a_protocol() -> None:
    # the socket serve made before: protocol 0, so asyncio left Nagle on
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    assert _accepted_nodelay(sock) == 0


def test_a_taken_address_is_a_usage_error() -> None:
    first = listen_socket("127.0.0.1", 0, "127.0.0.1:0")
    port = first.getsockname()[1]
    try:
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen_socket("127.0.0.1", port, f"127.0.0.1:{port}")
    finally:
        first.close()
