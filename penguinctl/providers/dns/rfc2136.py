"""The ``rfc2136`` DNS provider: dynamic updates (RFC 2136) signed with TSIG (RFC 8945).

- ``batch_key`` is the zone: a zone's changes go into one UPDATE message (a few when over
  ``MAX_MESSAGE`` octets; deletes first, then A/AAAA so an MX may point at a new in-zone host).
  Create/update *replaces* the whole RRset, delete removes it: applying twice is harmless. A TXT
  value is ONE RR of 255-octet character-strings (``txt_chunks``). Servers silently ignore data
  added next to a CNAME (RFC 2136 3.4.2.2): a prerequisite makes a foreign CNAME a YXRRSET error
  and published CNAMEs are read back.
- TCP, with UDP only when the TCP connection is refused; timeouts are retried ``retries`` times
  with backoff. TCP connections are kept and reused (a pool of idle ones, one per concurrent
  exchange): UPDATEs, queries and zone transfers of a run share a few connections instead of
  opening one per message; a kept connection the server closed meanwhile is replaced at once.
  Any rcode but NOERROR is a ``ProviderError`` naming the zone, ``server:port``, the rcode and
  what to check.
- ``read`` returns record data in the shape of ``penguinctl.dns.records`` (TXT strings joined,
  names absolute, values sorted, the RRset's TTL) from one AXFR per zone (TSIG-signed); when the
  server refuses transfers it asks one query per (name, type) instead, and stops trying AXFR.
- Only RRsets named by changes are touched: never the SOA, nor the apex NS. At the apex only
  the SPF value of the TXT RRset is penguinctl's (``changes.owned_value``): an update deletes
  the SPF values the change's ``before`` holds and adds the new ones, RR by RR; other TXT values
  there (site verification) are never touched and not read as drift.

TSIG algorithms: ``hmac-md5``, ``hmac-sha1``, ``hmac-sha224``, ``hmac-sha256``, ``hmac-sha384``,
``hmac-sha512`` (any case, trailing dot allowed). The secret (base64) never appears in a message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update
import dns.xfr

from penguinctl.dns.records import Record, make_record, split_record_name, txt_chunks
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.base import Provider
from penguinctl.providers.dns.changes import owned_value, record_change
from penguinctl.resources import ResourceKey

ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
MAX_MESSAGE = 32_000  # octets of RR data per UPDATE message (TCP allows 65535)
READ_WORKERS = 8  # zones transferred in parallel by one read()
UDP_PAYLOAD = 1232  # EDNS buffer size of queries (DNS flag day 2020)
IDLE_SECONDS = 10.0  # a kept TCP connection idle this long is closed, not reused
BACKOFF = 0.2  # seconds before the first retry, doubled each time
_HINTS = {
    "NOTAUTH": "the server is not a primary for this zone: check the zone name, the server and "
    "the TSIG key",
    "REFUSED": "check the TSIG key and the zone's allow-update/update-policy; BIND also refuses "
    "an MX whose in-zone target has no A/AAAA record (see the server's log)",
    "YXRRSET": "a CNAME not managed by penguinctl sits at a name it publishes other records at: "
    "remove that CNAME",
    "NOTZONE": "the record name is not inside the zone",
    "SERVFAIL": "the server could not apply it: check its log (zone loaded? journal writable?)",
}
_T = TypeVar("_T")
# (action, owner, type, ttl, new rdatas, old rdatas: only for the apex TXT, set value by value)
_Op = tuple[Action, dns.name.Name, str, int, list[dns.rdata.Rdata], list[dns.rdata.Rdata]]
_Item = tuple[ResourceKey, str, str]  # (key, relative name, type)


class _Key(dns.tsig.Key):
    """A TSIG key whose repr/str (tracebacks, debuggers) do not show the secret."""

    def __repr__(self) -> str:
        return f"<TSIG key {self.name} {self.algorithm} secret=******>"

    __str__ = __repr__


class _UdpTimeout(dns.exception.Timeout):
    """TCP was refused and UDP got no answer."""


class _Connections:
    """Idle TCP connections to one server, reused by the next exchange on any thread."""

    def __init__(self, address: Callable[[], str], port: int, timeout: float) -> None:
        self._address = address
        self._port = port
        self._timeout = timeout
        self._idle: list[tuple[socket.socket, float]] = []
        self._lock = threading.Lock()

    def take(self) -> tuple[socket.socket, bool]:
        """A connection, and whether it was kept (True) or just opened (False)."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                sock, since = self._idle.pop()
                if now - since < IDLE_SECONDS:
                    return sock, True
                sock.close()
        sock = socket.create_connection((self._address(), self._port), timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, False

    def give_back(self, sock: socket.socket) -> None:
        with self._lock:
            self._idle.append((sock, time.monotonic()))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock, _ in idle:
            sock.close()


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the server closed the connection")
        buf += chunk
    return bytes(buf)


def _send(sock: socket.socket, msg: dns.message.Message) -> None:
    wire = msg.to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)


def _receive(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    return _read_exactly(sock, length)


class Rfc2136Provider(Provider):
    def __init__(
        self,
        name: str,
        *,
        server: str,
        port: int = 53,
        tsig_name: str | None,
        tsig_algorithm: str = "hmac-sha256",
        tsig_secret: str | None,
        default_ttl: int = 3600,
        timeout: float = 5.0,
        retries: int = 2,
        max_parallel: int = 4,
    ) -> None:
        super().__init__(name)
        self.max_parallel = max_parallel
        self.server = server
        self.port = port
        self.where = f"{server}:{port}"
        self.default_ttl = default_ttl
        self.timeout = timeout
        self.retries = max(0, retries)
        self._address: str | None = None
        self._axfr_ok = True
        self._conns = _Connections(self._addr, port, timeout)
        weakref.finalize(self, self._conns.close)
        self._key: _Key | None = None
        if tsig_name or tsig_secret:
            algorithm = ALGORITHMS.get(tsig_algorithm.lower().rstrip("."))
            if algorithm is None:
                raise ProviderError(
                    f"{name}: TSIG algorithm {tsig_algorithm!r} is not supported",
                    hint="use one of " + ", ".join(ALGORITHMS),
                )
            if not tsig_name or not tsig_secret:
                raise ProviderError(
                    f"{name}: a TSIG key needs both a name and a secret",
                    hint="set tsig.name and tsig.secret in the DnsProvider spec",
                )
            try:
                self._key = _Key(tsig_name, tsig_secret, algorithm)
            except Exception:  # never echo the secret: binascii errors may quote it
                raise ProviderError(
                    f"{name}: the TSIG secret of key {tsig_name!r} is not valid base64",
                    hint="give the key material as printed by `tsig-keygen`",
                ) from None

    def _addr(self) -> str:
        """The server's IP address (a host name is resolved once)."""
        if self._address is None:
            try:
                info = socket.getaddrinfo(self.server, self.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ProviderError(
                    f"{self.name}: cannot resolve DNS server {self.server}: {exc.strerror}",
                    hint="check the server name in the DnsProvider spec",
                ) from None
            self._address = str(info[0][4][0])
        return self._address

    def _fail(self, zone: str, what: str, rcode: int) -> ProviderError:
        text = dns.rcode.to_text(rcode)
        return ProviderError(
            f"{self.name}: {what} of zone {zone} at {self.where} failed: {text}",
            hint=_HINTS.get(text, "check the server's log"),
        )

    def _retrying(self, zone: str, what: str, call: Callable[[], _T]) -> _T:
        """``call()`` with timeouts retried; DNS/TSIG/socket errors become ProviderErrors."""
        note = ""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (dns.exception.Timeout, ConnectionResetError, BrokenPipeError, EOFError) as exc:
                if isinstance(exc, _UdpTimeout):
                    note = "; TCP connection refused, no answer over UDP"
                if attempt < self.retries:
                    time.sleep(BACKOFF * 2**attempt)
            except dns.tsig.PeerError as exc:
                key = self._key.name if self._key is not None else "-"
                raise ProviderError(
                    f"{self.name}: {what} of zone {zone} at {self.where} failed: the server "
                    f"rejected the TSIG signature of key {key} ({type(exc).__name__})",
                    hint="check the TSIG key name, algorithm and secret",
                ) from None
            except (dns.exception.DNSException, OSError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ProviderError(
                    f"{self.name}: {what} of zone {zone} at {self.where} failed: {reason}",
                    hint="check that the server is reachable and answers DNS on that port",
                ) from None
        raise ProviderError(
            f"{self.name}: {what} of zone {zone}: no answer from {self.where} after "
            f"{self.retries + 1} attempts ({self.timeout:g} s each{note})",
            hint="check that the server runs and that a firewall lets TCP/UDP port "
            f"{self.port} through",
        )

    def close(self) -> None:
        """Close the kept TCP connections (also done when the provider is collected)."""
        self._conns.close()

    def _over_tcp(self, talk: Callable[[socket.socket], _T]) -> _T:
        """``talk(sock)`` on a kept or new TCP connection; the connection is kept for the next
        exchange only when ``talk`` completed. A kept connection the server closed meanwhile
        (idle timeout) is replaced once, at once: UPDATEs replace RRsets, so resending is safe."""
        for _ in range(2):
            sock, kept = self._conns.take()
            try:
                result = talk(sock)
            except (EOFError, ConnectionResetError, BrokenPipeError):
                sock.close()
                if kept:
                    continue
                raise
            except TimeoutError:
                sock.close()
                raise dns.exception.Timeout() from None
            except BaseException:
                sock.close()
                raise
            self._conns.give_back(sock)
            return result
        raise EOFError("the server closed the connection")  # pragma: no cover - loop returns

    def _exchange(self, msg: dns.message.Message) -> dns.message.Message:
        """Send over TCP; over UDP only when the TCP connection is refused."""

        def talk(sock: socket.socket) -> dns.message.Message:
            _send(sock, msg)
            resp = dns.message.from_wire(_receive(sock), keyring=msg.keyring, request_mac=msg.mac)
            if not msg.is_response(resp):
                raise dns.query.BadResponse()
            return resp

        try:
            return self._over_tcp(talk)
        except ConnectionRefusedError:
            try:
                return dns.query.udp(msg, self._addr(), timeout=self.timeout, port=self.port)
            except dns.exception.Timeout:
                raise _UdpTimeout() from None

    def _sign(self, msg: dns.message.Message) -> dns.message.Message:
        if self._key is not None:
            msg.use_tsig(self._key)
        return msg

    def batch_key(self, change: Change) -> Hashable:
        return change.key.name.split("/", 1)[0].lower()

    def _op(self, change: Change) -> tuple[str, _Op]:
        """The zone and update operation of a change; checks everything before any I/O."""
        rc = record_change(change, default_ttl=self.default_ttl)
        zone, rel, rtype = rc.zone, rc.name, rc.rtype
        try:
            origin = dns.name.from_text(zone)
            owner = dns.name.from_text(rel, origin=origin)
            rdtype = dns.rdatatype.from_text(rtype)
        except (dns.exception.DNSException, ValueError) as exc:
            raise ProviderError(f"{change.key}: not a valid DNS name or type ({exc})") from None
        if rdtype == dns.rdatatype.SOA or (rdtype == dns.rdatatype.NS and owner == origin):
            raise ProviderError(f"{change.key}: penguinctl never changes the SOA or apex NS")
        old: list[dns.rdata.Rdata] = []
        if rdtype == dns.rdatatype.TXT and owner == origin:  # shared: only our values go
            for value in (change.before or {}).get("values") or []:
                if owned_value("@", "TXT", str(value)):
                    with contextlib.suppress(dns.exception.DNSException, ValueError):
                        old.append(_rdata(rdtype, str(value), origin))
        if change.action is Action.DELETE:
            return zone, (change.action, owner, rtype, 0, [], old)
        values, ttl = rc.values, rc.ttl
        rdatas: list[dns.rdata.Rdata] = []
        for value in values:
            try:
                rdatas.append(_rdata(rdtype, str(value), origin))
            except (dns.exception.DNSException, ValueError) as exc:
                raise ProviderError(
                    f"{change.key}: {value!r} is not valid {rtype} data ({exc})"
                ) from None
        return zone, (change.action, owner, rtype, ttl, rdatas, old)

    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        by_zone: dict[str, list[_Op]] = defaultdict(list)
        for change in changes:  # check everything before sending anything
            zone, op = self._op(change)
            by_zone[zone].append(op)
        for zone, ops in by_zone.items():
            # deletes, then addresses (targets of MX/CNAME), then the rest; stable otherwise
            ops.sort(key=lambda o: (o[0] is not Action.DELETE, o[2] not in ("A", "AAAA")))
            cname_gone = {o[1] for o in ops if o[0] is Action.DELETE and o[2] == "CNAME"}
            message: list[_Op] = []
            size = 0
            for op in ops:
                op_size = (
                    64
                    + len(op[1].to_wire() or b"")
                    + sum(len(r.to_wire() or b"") for r in op[4] + op[5])
                )
                if message and size + op_size > MAX_MESSAGE:
                    self._update(zone, message, cname_gone)
                    message, size = [], 0
                message.append(op)
                size += op_size
            if message:
                self._update(zone, message, cname_gone)
        return [
            ChangeResult(change=c, data=None if c.action is Action.DELETE else c.after)
            for c in changes
        ]

    def _update(self, zone: str, ops: list[_Op], cname_gone: set[dns.name.Name]) -> None:
        """One UPDATE message. A server silently ignores data added next to a CNAME (RFC 2136
        3.4.2.2): a prerequisite turns a foreign CNAME into YXRRSET, and CNAMEs are read back."""
        msg = dns.update.UpdateMessage(zone)
        for owner in {o[1] for o in ops if o[0] is not Action.DELETE and o[2] != "CNAME"}:
            if owner not in cname_gone:
                msg.absent(owner, "CNAME")
        origin = dns.name.from_text(zone)
        for action, owner, rtype, ttl, rdatas, old in ops:
            if rtype == "TXT" and owner == origin:
                # shared with foreign values (site verification): remove the values penguinctl
                # published before (the change's "before"), add the new ones; nothing else
                for rd in old:
                    if rd not in rdatas:
                        msg.delete(owner, rd)
                for rd in rdatas:
                    msg.add(owner, ttl, rd)
            elif action is Action.DELETE:
                msg.delete(owner, rtype)
            else:
                msg.replace(owner, ttl, *rdatas)
        self._sign(msg)
        resp = self._retrying(zone, "update", lambda: self._exchange(msg))
        if resp.rcode() != dns.rcode.NOERROR:
            raise self._fail(zone, "update", resp.rcode())
        for action, owner, rtype, _ttl, rdatas, _old in ops:
            if action is Action.DELETE or rtype != "CNAME":
                continue
            live = self._retrying(zone, "query", lambda o=owner: self._query(zone, o, "CNAME"))
            if live is None or set(live) != set(rdatas):
                raise ProviderError(
                    f"{self.name}: {self.where} ignored the CNAME at {owner} (zone {zone}): "
                    "the name holds other records",
                    hint="remove the other records at that name, or use another host name",
                )

    def read(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, dict[str, Any]] | None:
        by_zone: dict[str, list[_Item]] = defaultdict(list)
        for key in keys:
            if key.kind != "dnsrecord" or key.name.count("/") != 2:
                continue
            zone, rel, rtype = split_record_name(key.name)
            by_zone[zone.lower().rstrip(".")].append((key, rel.lower(), rtype.upper()))
        out: dict[ResourceKey, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(READ_WORKERS, len(by_zone)))) as pool:
            for found in pool.map(lambda item: self._read_zone(*item), by_zone.items()):
                out.update(found)
        return out

    def _read_zone(self, zone: str, items: list[_Item]) -> dict[ResourceKey, Record]:
        origin = dns.name.from_text(zone)
        wanted: list[tuple[ResourceKey, dns.name.Name, str]] = []
        for key, rel, rtype in items:
            try:
                owner = dns.name.from_text(rel, origin=origin)
                dns.rdatatype.from_text(rtype)
            except (dns.exception.DNSException, ValueError):
                continue
            wanted.append((key, owner, rtype))
        rrsets = None
        if self._axfr_ok:
            rrsets = self._retrying(zone, "transfer", lambda: self._axfr(zone, origin))
        if rrsets is None:
            rrsets = {}
            for _key, owner, rtype in wanted:
                rds = self._retrying(
                    zone, "query", lambda o=owner, t=rtype: self._query(zone, o, t)
                )
                if rds is not None:
                    rrsets[(owner, rtype)] = rds
        out: dict[ResourceKey, Record] = {}
        for key, owner, rtype in wanted:
            rds = rrsets.get((owner, rtype))
            if rds is None or not len(rds):
                continue
            rel = owner.relativize(origin).to_text().lower()
            record = _record(zone, rel, rtype, rds)
            record["values"] = [v for v in record["values"] if owned_value(rel, rtype, v)]
            if record["values"]:
                out[key] = record
        return out

    def _axfr(self, zone: str, origin: dns.name.Name) -> dict[Any, dns.rdataset.Rdataset] | None:
        """The zone's RRsets by (name, type); None when the transfer is refused (after a
        REFUSED, or TCP refused, this provider stops asking for transfers)."""
        query = self._sign(dns.message.make_query(origin, dns.rdatatype.AXFR))
        try:
            rrsets = self._over_tcp(lambda sock: _transfer(sock, query))
        except dns.xfr.TransferError as exc:
            if exc.rcode not in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
                raise self._fail(zone, "transfer", exc.rcode) from None
            self._axfr_ok = exc.rcode != dns.rcode.REFUSED  # allow-transfer denies this key
            return None
        except ConnectionRefusedError:
            self._axfr_ok = False
            return None
        return {
            (name, dns.rdatatype.to_text(rdtype)): rds for (name, rdtype), rds in rrsets.items()
        }

    def _query(self, zone: str, owner: dns.name.Name, rtype: str) -> dns.rdataset.Rdataset | None:
        query = dns.message.make_query(owner, rtype, use_edns=0, payload=UDP_PAYLOAD)
        resp = self._exchange(self._sign(query))
        if resp.flags & dns.flags.TC:
            raise ProviderError(
                f"{self.name}: the answer for {owner} {rtype} from {self.where} does not fit "
                "in UDP and TCP is refused",
                hint="let penguinctl reach the server over TCP",
            )
        rcode = resp.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return None
        if rcode != dns.rcode.NOERROR or not resp.flags & dns.flags.AA:
            why = dns.rcode.to_text(rcode) if rcode else "no authoritative answer"
            raise ProviderError(
                f"{self.name}: {self.where} does not serve zone {zone} ({why})",
                hint="point the DnsProvider at the zone's primary server and check that the "
                "server loads the zone",
            )
        return resp.get_rrset(resp.answer, owner, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))


def _transfer(
    sock: socket.socket, query: dns.message.Message
) -> dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset]:
    """One AXFR (RFC 5936) over ``sock``: the zone's RRsets, the SOA included once. Messages are
    parsed as they arrive (TSIG checked across them), with no zone object built: the RRsets are
    all ``read`` needs. A connection stays usable for the next message once the closing SOA is
    read. Names stay absolute. Raises ``dns.xfr.TransferError`` for an rcode other than NOERROR."""
    _send(sock, query)
    rrsets: dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset] = {}
    tsig_ctx = None
    first, soas = True, 0
    while True:
        resp = dns.message.from_wire(
            _receive(sock),
            keyring=query.keyring,
            request_mac=query.mac,
            xfr=True,
            tsig_ctx=tsig_ctx,
            multi=True,
        )
        if not query.is_response(resp, xfr_continuation=not first):
            raise dns.query.BadResponse()
        if resp.rcode() != dns.rcode.NOERROR:
            raise dns.xfr.TransferError(resp.rcode())
        if query.keyring and not resp.had_tsig and first:
            raise dns.exception.FormError("the transfer is not signed")
        tsig_ctx = resp.tsig_ctx
        for rrset in resp.answer:
            if first and rrset.rdtype != dns.rdatatype.SOA:
                raise dns.exception.FormError("a zone transfer must begin with the SOA")
            first = False
            if rrset.rdtype == dns.rdatatype.SOA:
                soas += 1
                if soas == 2:  # the closing SOA (RFC 5936 2.2)
                    return rrsets
            key = (rrset.name, rrset.rdtype)
            if key in rrsets:
                rrsets[key].union_update(rrset)
            else:
                rrsets[key] = dns.rdataset.Rdataset(rrset.rdclass, rrset.rdtype)
                rrsets[key].update(rrset)
        first = False


def _rdata(rdtype: dns.rdatatype.RdataType, value: str, origin: dns.name.Name) -> dns.rdata.Rdata:
    """A value in presentation form as rdata; a TXT value as ONE RR of 255-octet strings."""
    if rdtype == dns.rdatatype.TXT:
        chunks = [c.encode("utf-8") for c in txt_chunks(value)]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=origin, relativize=False)


def _record(zone: str, rel: str, rtype: str, rds: dns.rdataset.Rdataset) -> Record:
    """An RRset in the data shape of ``penguinctl.dns.records``."""
    if rds.rdtype == dns.rdatatype.TXT:
        values = [b"".join(rd.strings).decode("utf-8", errors="replace") for rd in rds]
    elif rds.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        values = [str(ipaddress.ip_address(rd.address)) for rd in rds]
    else:
        values = [rd.to_text() for rd in rds]
    return make_record(zone, rel, rtype, rds.ttl, sorted(set(values)))
