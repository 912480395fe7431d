"""A webhook receiver process for the tests: verifies every delivery with the
``standardwebhooks`` library and logs it as a JSON line.

Run as ``python webhook_receiver.py CONFIG.json``. Per URL path the config gives the secrets
that may have signed (``whsec_...``), how many of the first requests to answer 500
(``fail_first``, counted across restarts), and the status to answer after that (``status``,
default 200), and ``delay`` seconds to wait before answering. A delivery
whose signature does not verify gets 401 (and ``"verified": false`` in the log).

The library checks ``webhook-timestamp`` against its wall clock (5 minutes of tolerance). The
tests move the product clock forward by hours through a clock file that penguinctl and this
process share, so the tolerance is measured against that clock instead: the subclass below
overrides the library's private timestamp check (name-mangled ``_Webhook__verify_timestamp``)
and nothing else; the signature comparison is the library's own.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from penguinctl.clock import FileClock

with open(sys.argv[1]) as _cfg:
    CONFIG = json.load(_cfg)
CLOCK = FileClock(CONFIG["clock_file"])
LOCK = threading.Lock()
SEEN: Counter = Counter()  # requests per path, across restarts (counted from the log)
try:
    with open(CONFIG["log"]) as _fh:
        for _line in _fh:
            SEEN[json.loads(_line)["path"]] += 1
except FileNotFoundError:
    pass


class ClockedWebhook(Webhook):
    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        now = CLOCK.now()
        try:
            stamp = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        except ValueError:
            raise WebhookVerificationError("Invalid Signature Headers") from None
        if abs(stamp - now) > timedelta(minutes=5):
            raise WebhookVerificationError("Message timestamp out of tolerance")
        return stamp


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)  # shorter when the sender died mid-request
        cfg = CONFIG["paths"].get(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified_with = None
        for i, secret in enumerate((cfg or {}).get("secrets", [])):
            try:
                ClockedWebhook(secret).verify(body, headers)
                verified_with = i
                break
            except WebhookVerificationError:
                continue
        msg_id = headers.get("webhook-id", "")
        if cfg and cfg.get("delay"):
            time.sleep(cfg["delay"])  # a slow receiver: deliveries stay in flight
        with LOCK:
            SEEN[self.path] += 1
            nth = SEEN[self.path]
        if cfg is None:
            status = 404
        elif verified_with is None:
            status = 401
        elif nth <= cfg.get("fail_first", 0):
            status = 500
        else:
            status = cfg.get("status", 200)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        entry = {
            "path": self.path,
            "id": msg_id,
            "timestamp": headers.get("webhook-timestamp"),
            "signatures": len(headers.get("webhook-signature", "").split()),
            "verified": verified_with is not None,
            "complete": len(body) == length,
            "verified_with": verified_with,
            "legacy": headers.get("x-penguinctl-signature"),
            "status": status,
            "type": parsed.get("type"),
            "tenant": parsed.get("tenant"),
            "body": body.decode(),
            "at": CLOCK.now().isoformat(),
        }
        with LOCK, open(CONFIG["log"], "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"nope")

    def log_message(self, *args) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", CONFIG["port"]), Handler)
server.daemon_threads = True
server.serve_forever()
