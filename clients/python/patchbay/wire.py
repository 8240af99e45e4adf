"""Protocol v1 plumbing shared by Client, Worker and admin(): endpoints,
connecting, framing (4-byte big-endian length + one MessagePack map) and the
HELLO/WELCOME handshake. See docs/protocol.md."""

import os
import select
import socket
import struct
import sys
import threading
import time

import msgpack

from .errors import ConnectError, ConnectionLost, ProtocolError

PROTOCOL_VERSION = 1
MAX_FRAME_HELLO = 4096
MAX_FRAME_DEFAULT = 1048576
FRAME_SLACK = 64  # the broker may add keys to frames it forwards
ID_LEN = 16
ENDPOINT_LIST_MAX = 16  # brokers in one list (util/endpoint.c)
ENDPOINT_TEXT_MAX = 383  # bytes in one entry of a list
UNIX_PATH_MAX = 107  # bytes in a unix socket path (sun_path, less its NUL)
TCP_HOST_MAX = 255


def default_endpoint():
    """The endpoint used when none is given, in the C library's order:
    $PATCHBAY_BROKER (an endpoint or a list of them, returned as it is),
    unix:$PATCHBAY_SOCKET, unix:$XDG_RUNTIME_DIR/patchbay.sock,
    unix:/tmp/patchbay-$UID/patchbay.sock."""
    v = os.environ.get("PATCHBAY_BROKER")
    if v:
        return v
    v = os.environ.get("PATCHBAY_SOCKET")
    if v:
        return "unix:" + v
    v = os.environ.get("XDG_RUNTIME_DIR")
    if v:
        return "unix:%s/patchbay.sock" % v
    return "unix:/tmp/patchbay-%d/patchbay.sock" % os.getuid()


def parse_endpoint(text):
    """("unix", path) or ("tcp", (host, port)); ValueError when malformed.
    Same syntax as util/endpoint.c: unix:PATH, tcp:HOST:PORT,
    tcp:[V6]:PORT."""
    if not text:
        raise ValueError("empty endpoint")
    if text.startswith("tcp://") or text.startswith("unix://"):
        kind = "tcp" if text[0] == "t" else "unix"
        raise ValueError("endpoint '%s': write %s:%s, not %s://" % (
            text, kind, "HOST:PORT" if kind == "tcp" else "PATH", kind))
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError("endpoint '%s': empty socket path" % text)
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise ValueError("endpoint '%s': socket path longer than %d "
                             "bytes" % (text, UNIX_PATH_MAX))
        return "unix", path
    if text.startswith("tls:"):
        raise ValueError("endpoint '%s': the Python client does not speak "
                         "TLS; use a tcp: or unix: endpoint, or the C "
                         "library or the patchbay CLI for tls:" % text)
    if text.startswith("tcp:"):
        s = text[4:]
        if s.startswith("["):
            close = s.find("]")
            if close < 0 or s[close + 1:close + 2] != ":":
                raise ValueError("tcp endpoint '%s': expected "
                                 "[ADDRESS]:PORT" % s)
            host, port = s[1:close], s[close + 2:]
        else:
            host, sep, port = s.rpartition(":")
            if not sep:
                raise ValueError("tcp endpoint '%s': missing :PORT" % s)
            if ":" in host:
                raise ValueError("tcp endpoint '%s': an IPv6 address must "
                                 "be written in brackets, as [::1]:PORT" % s)
        if not host:
            raise ValueError("tcp endpoint '%s': empty host" % s)
        if len(host.encode("utf-8", "surrogateescape")) > TCP_HOST_MAX:
            raise ValueError("tcp endpoint '%s': too long a host" % s)
        if not port.isdigit() or int(port) > 65535:
            raise ValueError("tcp endpoint '%s': port '%s' is not a number "
                             "from 0 to 65535" % (s, port))
        return "tcp", (host, int(port))
    raise ValueError("endpoint '%s': expected unix:PATH or tcp:HOST:PORT"
                     % text)


def split_endpoints(text=None):
    """The brokers of an endpoint list, "A,B,..." (None: the default
    endpoint), as a list of endpoint strings in their order: one endpoint
    is a list of one. Blanks (spaces, tabs) around the commas are ignored.
    Raises ValueError, with util/endpoint.c's sentences, for an empty entry,
    more than 16 brokers, an entry longer than 383 bytes, a malformed
    endpoint (parse_endpoint()'s sentence) or the same broker twice."""
    if text is None:
        text = default_endpoint()
    if not isinstance(text, str):
        raise TypeError("an endpoint is a str, not %s" % type(text).__name__)
    if not text:
        raise ValueError("empty endpoint")
    out = []
    for part in text.split(","):
        one = part.strip(" \t")
        if not one:
            raise ValueError("the broker list has an empty entry")
        if len(out) == ENDPOINT_LIST_MAX:
            raise ValueError("the broker list has more than %d brokers"
                             % ENDPOINT_LIST_MAX)
        if len(one.encode("utf-8", "surrogateescape")) > ENDPOINT_TEXT_MAX:
            raise ValueError("the broker list has an entry longer than %d "
                             "bytes" % ENDPOINT_TEXT_MAX)
        parse_endpoint(one)
        if one in out:
            raise ValueError("the broker list has %s twice" % one)
        out.append(one)
    return out


def open_socket(endpoint, timeout):
    """A connected, blocking socket to endpoint (None: the default)."""
    if endpoint is None:
        endpoint = default_endpoint()
    kind, addr = parse_endpoint(endpoint)
    try:
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(addr)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(addr, timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        raise ConnectError("cannot connect to %s: %s" % (
            endpoint, e.strerror or e)) from e
    sock.settimeout(None)
    return sock


def pack(pkt):
    """One whole frame for the packet dict pkt."""
    body = msgpack.packb(pkt, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def _program_name():
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name or "python"


class Connection:
    """One broker connection: a blocking socket, a send lock, a frame
    reader. recv() is for one thread at a time; send() for any thread."""

    def __init__(self, sock, where):
        self.sock = sock
        self.where = where
        self.send_lock = threading.Lock()
        self.buf = bytearray()
        self.unpacker_opts = dict(raw=False, strict_map_key=False,
                                  unicode_errors="surrogateescape")
        self.max_frame = MAX_FRAME_HELLO
        self.heartbeat_ms = 5000
        self.session = None
        self.server = None
        self.last_rx = time.monotonic()
        self.closed = False
        self.ping_n = 0

    def fileno(self):
        return self.sock.fileno()

    def send(self, pkt):
        frame = pack(pkt)
        if len(frame) - 4 > self.max_frame:
            raise ValueError("a %s of %d bytes is larger than the broker's "
                             "frame limit (%d)" % (pkt["t"], len(frame) - 4,
                                                   self.max_frame))
        with self.send_lock:
            if self.closed:
                raise ConnectionLost("the connection to %s is closed"
                                     % self.where)
            try:
                self.sock.sendall(frame)
            except OSError as e:
                raise ConnectionLost("sending to %s: %s" % (
                    self.where, e.strerror or e)) from e

    def ping(self):
        self.ping_n += 1
        self.send({"t": "PING", "n": self.ping_n})
        return self.ping_n

    def _frame(self):
        """One decoded packet from the buffer, or None if incomplete."""
        if len(self.buf) < 4:
            return None
        (n,) = struct.unpack_from(">I", self.buf)
        if n == 0 or n > self.max_frame + FRAME_SLACK:
            raise ProtocolError("%s sent a frame of %d bytes (limit %d)"
                                % (self.where, n, self.max_frame))
        if len(self.buf) < 4 + n:
            return None
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        try:
            pkt = msgpack.unpackb(body, **self.unpacker_opts)
        except Exception as e:
            raise ProtocolError("%s sent an undecodable frame: %s"
                                % (self.where, e))
        if not isinstance(pkt, dict) or not isinstance(pkt.get("t"), str):
            raise ProtocolError("%s sent a frame that is not a packet"
                                % self.where)
        return pkt

    def recv(self, timeout, wakeup=None):
        """The next packet, or None when timeout (seconds, None: forever)
        passes or the wakeup descriptor becomes readable. Raises
        ConnectionLost on EOF or a socket error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pkt = self._frame()
            if pkt is not None:
                self.last_rx = time.monotonic()
                return pkt
            left = None if deadline is None else max(0.0,
                                                     deadline - time.monotonic())
            fds = [self.sock] if wakeup is None else [self.sock, wakeup]
            try:
                r, _, _ = select.select(fds, [], [], left)
            except (OSError, ValueError) as e:
                raise ConnectionLost("%s: %s" % (self.where, e))
            if wakeup is not None and wakeup in r:
                return None
            if not r:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError as e:
                raise ConnectionLost("reading from %s: %s" % (
                    self.where, e.strerror or e)) from e
            if not data:
                raise ConnectionLost("%s closed the connection" % self.where)
            self.buf += data

    def handshake(self, role, name, token, timeout):
        hello = {"t": "HELLO", "v": PROTOCOL_VERSION, "role": role}
        name = _program_name() if name is None else name
        token = os.environ.get("PATCHBAY_TOKEN") if token is None else token
        if name:
            hello["name"] = name
        if token:
            hello["token"] = token
        try:
            self.send(hello)
        except ValueError:
            raise ConnectError("HELLO to %s is too large: the name or the "
                               "token is too long" % self.where)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectError("no WELCOME from %s within %.1f s"
                                   % (self.where, timeout))
            try:
                pkt = self.recv(left)
            except ConnectionLost as e:
                raise ConnectError("%s closed the connection during the "
                                   "handshake" % self.where) from e
            if pkt is None:
                continue
            t = pkt["t"]
            if t == "WELCOME":
                self.session = pkt.get("session")
                self.heartbeat_ms = int(pkt.get("heartbeat_ms") or 5000)
                self.max_frame = int(pkt.get("max_frame") or
                                     MAX_FRAME_DEFAULT)
                self.server = pkt.get("server")
                return pkt
            if t == "ERROR":
                raise ProtocolError("%s refused the handshake: %s" % (
                    self.where, pkt.get("msg", "")), code=pkt.get("code"))
            if t == "PING":
                self.send({"t": "PONG", "n": pkt.get("n", 0)})

    def close(self):
        with self.send_lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def connect(endpoint, role, name=None, token=None, timeout=5.0):
    """A Connection that has done its handshake."""
    where = endpoint or default_endpoint()
    sock = open_socket(where, timeout)
    conn = Connection(sock, where)
    try:
        conn.handshake(role, name, token, timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_any(endpoints, start, role, name=None, token=None, timeout=5.0):
    """(Connection, index): the first broker of the list endpoints, from
    endpoints[start] on and wrapping, that takes the connection (connect
    plus handshake, each bounded by timeout). When none does: with one
    endpoint, its own exception; with several, ProtocolError when one of
    them refused the handshake (a refusal says more than an unreachable
    broker; code is the first refusal's), else ConnectError, with every
    failure in the message, joined with "; "."""
    n = len(endpoints)
    if n == 0:
        raise ValueError("empty endpoint")
    errors = []
    first = refusal = None
    for i in range(n):
        at = (start + i) % n
        try:
            return connect(endpoints[at], role, name, token, timeout), at
        except ProtocolError as e:
            if refusal is None:
                refusal = e
            errors.append(e.error or str(e))
            first = first or e
        except ConnectionLost as e:
            errors.append(str(e))
            first = first or e
    if n == 1:
        raise first
    text = "; ".join(errors)
    if refusal is not None:
        raise ProtocolError(text, code=refusal.code) from refusal
    raise ConnectError(text) from first


def adopt(fd, role, name=None, timeout=5.0):
    """A Connection over an inherited descriptor (PATCHBAY_FD)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise ConnectError("PATCHBAY_FD=%d: %s" % (fd, e.strerror or e))
    sock.setblocking(True)
    os.set_inheritable(fd, False)
    conn = Connection(sock, "the inherited connection (PATCHBAY_FD=%d)" % fd)
    try:
        conn.handshake(role, name, "", timeout)
    except BaseException:
        conn.close()
        raise
    return conn
