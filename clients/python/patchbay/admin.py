"""admin(): one ADMIN verb, one REPLY (the `patchbay ctl` verbs)."""

import time

from . import wire
from .errors import AdminError, ConnectError, ProtocolError


def admin(verb, args=None, endpoint=None, timeout=10.0, name=None):
    """Connects as an admin, sends ADMIN {verb, args} and returns the
    REPLY's data (None when the verb answers nothing). endpoint may be a
    list "A,B,...": the verb goes to the first broker that answers (give one
    endpoint to reach a given broker). Raises AdminError
    when the broker refuses the verb (REPLY ok:false; e.g. an unknown verb),
    ProtocolError when it refuses the connection (admin is accepted only
    over a unix socket, from the broker's own uid or root), ConnectError.

        patchbay.admin("status")["results"]["OK"]
        patchbay.admin("scale", {"pool": "rev", "instances": 2})
    """
    if not isinstance(verb, str) or not verb:
        raise TypeError("verb must be a non-empty str")
    if args is not None and not isinstance(args, dict):
        raise TypeError("args must be a dict")
    conn, _ = wire.connect_any(wire.split_endpoints(endpoint), 0, "admin",
                               name, None, timeout)
    try:
        pkt = {"t": "ADMIN", "seq": 1, "verb": verb}
        if args is not None:
            pkt["args"] = args
        conn.send(pkt)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectError("no REPLY to '%s' within %.1f s"
                                   % (verb, timeout))
            p = conn.recv(left)
            if p is None:
                continue
            if p["t"] == "REPLY" and p.get("seq") == 1:
                if not p.get("ok"):
                    raise AdminError(p.get("error") or
                                     "the broker refused '%s'" % verb)
                return p.get("data")
            if p["t"] == "PING":
                conn.send({"t": "PONG", "n": p.get("n", 0)})
            elif p["t"] == "ERROR":
                raise ProtocolError(p.get("msg", ""), code=p.get("code"))
    finally:
        conn.close()
