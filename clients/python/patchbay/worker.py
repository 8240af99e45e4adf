"""Worker: registers functions and answers the jobs the broker pushes.

Threads: each broker the worker serves (one, or every broker of a list) has
a thread that owns its connection's reading side: it takes RUN and CANCEL,
answers PINGs and reconnects with its own backoff. The thread that calls
run() waits for stop() (or for every broker to be given up). Handlers run in
a pool of `capacity` daemon threads per broker (one thread when capacity is
1 and there is one broker), so a handler may block for as long as its job
allows without the broker losing sight of the worker. A job is answered on
the connection it came on. Sending (RESULT, PROGRESS, PONG) is serialised by
a per-connection lock, so job.progress() may be called from any thread."""

import logging
import os
import queue
import random
import signal
import threading
import time
import uuid

from . import wire
from .errors import (Cancelled, ConnectError, ConnectionLost,
                     ProtocolError)

log = logging.getLogger("patchbay.worker")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
MAX_ERROR_TEXT = 65536
# Refusals that may go away by themselves; any other refused HELLO is fatal.
TRANSIENT_CODES = {"TOO_MANY_CONNECTIONS", "SHUTTING_DOWN", "HELLO_TIMEOUT",
                   "SLOW_CONSUMER"}


class Job:
    """One dispatch of a job, handed to a handler.

    id (uuid.UUID), fn (str), payload (bytes), meta (the dict of str to
    str the client sent, {} for none; "traceparent" and "tracestate" are
    its W3C Trace Context), attempt (1 for the first
    dispatch), timeout_ms (time left when it was pushed, 0: none), deadline
    (time.monotonic() value or None), cancelled (bool), cancel_event (a
    threading.Event set when the broker cancels this attempt, the job times
    out, the connection it came on is lost, or the worker stops)."""

    def __init__(self, worker, conn, pkt):
        self._worker = worker
        self._conn = conn
        self.id = uuid.UUID(bytes=bytes(pkt["id"]))
        self._id = bytes(pkt["id"])
        self.fn = pkt.get("fn", "")
        self.payload = pkt.get("payload") or b""
        meta = pkt.get("meta")
        self.meta = dict(meta) if isinstance(meta, dict) else {}
        self.attempt = int(pkt.get("attempt", 1))
        self.timeout_ms = int(pkt.get("timeout_ms") or 0)
        self.deadline = (time.monotonic() + self.timeout_ms / 1000.0
                         if self.timeout_ms else None)
        self.cancel_event = threading.Event()
        self.finished = False

    @property
    def cancelled(self):
        return self.cancel_event.is_set()

    def wait_cancelled(self, timeout=None):
        """Sleeps until the job is cancelled or timeout (seconds) passes;
        True if it was cancelled. A handy interruptible sleep."""
        return self.cancel_event.wait(timeout)

    def progress(self, data):
        """Sends PROGRESS (bytes) to the client now. Returns False when it
        could not be sent (the job is finished or its connection is gone:
        nobody is listening any more)."""
        if isinstance(data, str):
            raise TypeError("progress data must be bytes, not str: encode "
                            "it, e.g. data.encode()")
        data = bytes(data)
        if self.finished or self._conn.closed:
            return False
        try:
            self._conn.send({"t": "PROGRESS", "id": self._id,
                             "attempt": self.attempt, "payload": data})
        except ConnectionLost:
            return False
        return True

    def __repr__(self):
        return "<Job %s fn=%s attempt=%d>" % (self.id, self.fn, self.attempt)


def _inherited_fd():
    v = os.environ.get("PATCHBAY_FD")
    if not v:
        return None
    try:
        fd = int(v)
        if fd < 0:
            raise ValueError
    except ValueError:
        raise ConnectError("PATCHBAY_FD='%s' is not a file descriptor "
                           "number" % v)
    # The descriptor is ours now (and close-on-exec once adopted): do not
    # let a handler's child process, or a second Worker, take it for its own.
    del os.environ["PATCHBAY_FD"]
    return fd


class _Link:
    """One broker of a Worker: its endpoint (None: the inherited
    PATCHBAY_FD), its connection while registered, the jobs that came on
    that connection, and the thread that keeps it up."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.where = endpoint or "the inherited connection (PATCHBAY_FD)"
        self.conn = None          # while registered
        self.running = {}         # (id bytes, attempt) -> Job, on conn
        self.thread = None
        self.error = None         # why the last attempt failed
        self.tried_at = None      # when it failed (time.monotonic())
        self.fatal = None         # why this broker is given up for good
        self.stop = False         # run() is returning


class Worker:
    """Worker(endpoint=None, name=None, token=None, capacity=1,
    connect_timeout=None, timeout=5.0, stop_timeout=5.0).

    endpoint: one endpoint, or a list "A,B,..." of up to 16 brokers, which
    the worker registers with and serves all at once (ValueError for a
    malformed one); None: the descriptor in $PATCHBAY_FD when set (a worker
    the broker spawned; its loss is final), else the default endpoint.
    capacity is offered to each broker of the list.
    connect_timeout: how long run() waits for a broker that is not up at
    start (with a list: for any of them), in seconds (None: for ever, with
    backoff; 0: fail at once). timeout bounds each connect and handshake;
    stop_timeout is how long run() waits for running handlers after
    stop()."""

    def __init__(self, endpoint=None, name=None, token=None, capacity=1,
                 connect_timeout=None, timeout=5.0, stop_timeout=5.0):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or \
                not 1 <= capacity <= 65535:
            raise ValueError("capacity must be an integer from 1 to 65535")
        self.endpoint = endpoint
        self.name = name
        self.token = token
        self.capacity = capacity
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.stop_timeout = stop_timeout
        self._inherited = _inherited_fd() if endpoint is None else None
        # The brokers served: one endpoint is a list of one; none for an
        # inherited connection.
        self.brokers = () if self._inherited is not None else \
            tuple(wire.split_endpoints(endpoint))
        self._handlers = {}
        self._links = []
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._threads = []
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()    # stop()
        self._poke_r, self._poke_w = os.pipe()    # a link changed
        os.set_blocking(self._poke_w, False)
        self.registered = threading.Event()  # set while registered
        self.connections = 0          # successful registrations so far

    # -- configuration ---------------------------------------------------

    def handler(self, fn):
        """Decorator: @worker.handler("fn") def f(job): return b"...".
        The function returns bytes (None counts as b""); raising an
        exception answers ERROR with its text; raising Cancelled, or
        returning after the job was cancelled, answers CANCELLED."""
        def deco(func):
            self.add_handler(fn, func)
            return func
        return deco

    def add_handler(self, fn, func):
        if not isinstance(fn, str) or not 1 <= len(fn.encode()) <= 255:
            raise ValueError("a function name is 1 to 255 bytes")
        if fn not in self._handlers and len(self._handlers) >= 256:
            raise ValueError("a worker serves at most 256 functions")
        self._handlers[fn] = func
        with self._lock:
            conns = [link.conn for link in self._links
                     if link.conn is not None]
        for conn in conns:
            try:
                self._register(conn)
            except ConnectionLost:
                pass

    # -- running ---------------------------------------------------------

    def run(self, install_signals=True):
        """Connects, registers and serves until stop() (or SIGTERM/SIGINT
        when install_signals and called from the main thread), reconnecting
        with backoff (100 ms doubling to 5 s) when the broker goes away.
        With a list, every broker has its own connection, reader thread and
        backoff, and a broker that is down does not keep the worker from
        serving the others. Returns after stop(). Raises ProtocolError when
        the broker refuses the worker (a wrong token...; with a list, when
        every broker did), ConnectError when connect_timeout runs out,
        ConnectionLost when an inherited connection (PATCHBAY_FD) closes."""
        if not self._handlers:
            raise ValueError("no handler registered")
        old = {}
        if install_signals and \
                threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                old[sig] = signal.signal(sig, lambda *_: self.stop())
        if self._inherited is not None:
            links = [_Link(None)]
        else:
            links = [_Link(ep) for ep in self.brokers]
        # Each broker may push `capacity` jobs: a thread for every one.
        self._start_pool(self.capacity * len(links))
        started = time.monotonic()
        try:
            with self._lock:
                self._links = links
            for link in links:
                link.thread = threading.Thread(
                    target=self._keep, args=(link, started), daemon=True,
                    name="patchbay-worker-%s" % link.where)
                link.thread.start()
            self._supervise(links, started)
        finally:
            for link in links:
                link.stop = True
            self._stopping = True
            self._wake()
            deadline = time.monotonic() + self.timeout + 1.0
            for link in links:
                if link.thread is not None:
                    link.thread.join(max(0.0, deadline - time.monotonic()))
            self._shutdown()
            with self._lock:
                self._links = []
            for sig, h in old.items():
                signal.signal(sig, h)

    def start(self, timeout=10.0):
        """Runs run() in a daemon thread and waits until registered (with
        one broker of a list). Returns the thread. For embedding and tests;
        stop() ends it."""
        t = threading.Thread(target=self.run, kwargs={"install_signals":
                                                      False},
                             daemon=True, name="patchbay-worker")
        t.start()
        if not self.registered.wait(timeout):
            raise TimeoutError("the worker did not register in %.1f s"
                               % timeout)
        return t

    def stop(self):
        """Makes run() return: the connections are closed (the brokers
        retry the running jobs or answer WORKER_LOST), running jobs are
        flagged cancelled, and run() waits up to stop_timeout for their
        handlers. Safe from any thread and from a signal handler."""
        self._stopping = True
        self._wake()

    @property
    def connected(self):
        """True while registered with at least one broker."""
        return self.registered.is_set()

    @property
    def serving(self):
        """The endpoints of the brokers the worker is registered with now,
        in the order of the list."""
        with self._lock:
            return [link.where for link in self._links
                    if link.conn is not None]

    # -- internals -------------------------------------------------------

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _poke(self):
        try:
            os.write(self._poke_w, b"x")
        except OSError:
            pass

    def _sleep(self, seconds):
        import select
        try:
            select.select([self._wake_r], [], [], seconds)
        except (OSError, ValueError):
            time.sleep(seconds)

    def _supervise(self, links, started):
        """In run()'s thread: waits for stop(), for every broker to be
        given up (raises the first one's reason), or for connect_timeout
        to run out with no broker ever registered (raises ConnectError)."""
        import select
        deadline = None
        if self.connect_timeout is not None:
            deadline = started + self.connect_timeout
        while not self._stopping:
            fatal = [link for link in links if link.fatal is not None]
            if len(fatal) == len(links):
                raise fatal[0].fatal
            if deadline is not None and self.connections == 0 and \
                    time.monotonic() >= deadline and \
                    all(link.fatal is not None or (
                        link.tried_at is not None and
                        link.tried_at >= deadline) for link in links):
                if len(links) == 1:
                    raise links[0].error
                raise ConnectError(
                    "no broker of the %d listed is reachable (%s)" % (
                        len(links), "; ".join(
                            str(link.fatal or link.error)
                            for link in links))) from links[0].error
            wait = None
            if deadline is not None and self.connections == 0:
                # Past the deadline, a link's attempt pokes us.
                wait = max(0.0, deadline - time.monotonic()) or None
            try:
                r, _, _ = select.select([self._wake_r, self._poke_r], [],
                                        [], wait)
            except InterruptedError:
                continue
            if self._poke_r in r:
                os.read(self._poke_r, 4096)

    def _keep(self, link, started):
        """A link's thread: connects with backoff, serves, reconnects, until
        run() returns or the broker is given up (link.fatal)."""
        backoff = 0.0
        try:
            while not (self._stopping or link.stop):
                try:
                    conn = self._connect(link)
                except (ConnectionLost, ProtocolError) as e:
                    link.error = e
                    link.tried_at = time.monotonic()
                    if link.endpoint is None or (
                            isinstance(e, ProtocolError)
                            and e.code not in TRANSIENT_CODES):
                        link.fatal = e
                        if len(self.brokers) > 1:
                            log.error("giving up the broker at %s: %s",
                                      link.where, e)
                        return
                    self._poke()
                    backoff = min(BACKOFF_MAX_S,
                                  max(BACKOFF_MIN_S, backoff * 2))
                    delay = backoff * random.uniform(0.75, 1.25)
                    if self.connections == 0 and \
                            self.connect_timeout is not None:
                        left = started + self.connect_timeout - \
                            time.monotonic()
                        if left > 0:
                            delay = min(delay, left)
                    log.info("cannot reach the broker at %s (%s); retrying "
                             "in %.0f ms", link.where, e, delay * 1000)
                    self._sleep(delay)
                    continue
                if self._stopping or link.stop:
                    conn.close()
                    return
                backoff = 0.0
                self._serve(link, conn)
                if link.endpoint is None and not self._stopping:
                    link.fatal = ConnectionLost("the inherited connection "
                                                "(PATCHBAY_FD) closed")
                    return
                if not self._stopping:
                    # Not at once: a broker that is restarting is not up yet.
                    backoff = BACKOFF_MIN_S / 2
        except BaseException as e:  # a bug: do not leave run() waiting
            if link.fatal is None:
                link.fatal = e
            log.exception("the connection to %s failed", link.where)
        finally:
            self._poke()

    def _connect(self, link):
        if link.endpoint is None:
            fd, self._inherited = self._inherited, -1
            if fd < 0:
                raise ConnectionLost("the inherited connection "
                                     "(PATCHBAY_FD) is closed")
            return wire.adopt(fd, "worker", self.name, self.timeout)
        return wire.connect(link.endpoint, "worker", self.name, self.token,
                            self.timeout)

    def _register(self, conn):
        conn.send({"t": "REGISTER", "fns": sorted(self._handlers),
                   "capacity": self.capacity})

    def _serve(self, link, conn):
        try:
            # Seen by add_handler() before REGISTER, so that a function
            # added meanwhile is registered too (again, which is harmless).
            with self._lock:
                link.conn = conn
            self._register(conn)
            with self._lock:
                self.connections += 1
                self.registered.set()
            log.info("serving %s (capacity %d) at %s", ", ".join(
                sorted(self._handlers)), self.capacity, conn.where)
            hb = max(conn.heartbeat_ms / 1000.0, 0.05)
            pinged = False
            while not (self._stopping or link.stop):
                pkt = conn.recv(hb / 2, wakeup=self._wake_r)
                if pkt is None:
                    silent = time.monotonic() - conn.last_rx
                    if silent > 4 * hb:
                        raise ConnectionLost("%s went silent for %.1f s"
                                             % (conn.where, silent))
                    if silent > 2 * hb and not pinged:
                        conn.ping()
                        pinged = True
                    continue
                pinged = False
                self._handle(link, conn, pkt)
        except (ConnectionLost, ProtocolError) as e:
            if not self._stopping:
                log.warning("lost the broker at %s: %s", link.where, e)
        finally:
            # Closed first: an answer sent after this fails, and jobs of
            # this connection finished meanwhile are not answered.
            conn.close()
            with self._lock:
                link.conn = None
                lost = list(link.running.values())
                link.running.clear()
                if not any(other.conn is not None for other in self._links):
                    self.registered.clear()
            for job in lost:
                job.cancel_event.set()  # its answer can no longer go out

    def _handle(self, link, conn, pkt):
        t = pkt["t"]
        if t == "RUN":
            job = Job(self, conn, pkt)
            job._link = link
            with self._lock:
                link.running[(job._id, job.attempt)] = job
            self._queue.put(job)
        elif t == "CANCEL":
            with self._lock:
                job = link.running.get((bytes(pkt.get("id", b"")),
                                        int(pkt.get("attempt", 0))))
            if job is not None:
                job.cancel_event.set()
        elif t == "PING":
            conn.send({"t": "PONG", "n": pkt.get("n", 0)})
        elif t == "BYE":
            log.info("the broker at %s said BYE (%s)", link.where,
                     pkt.get("reason", ""))
        elif t == "ERROR":
            log.warning("the broker at %s sent ERROR %s: %s", link.where,
                        pkt.get("code"), pkt.get("msg"))

    def _start_pool(self, n):
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < n:
            t = threading.Thread(target=self._pool_thread, daemon=True,
                                 name="patchbay-handler-%d"
                                 % len(self._threads))
            t.start()
            self._threads.append(t)

    def _pool_thread(self):
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._execute(job)

    def _execute(self, job):
        func = self._handlers.get(job.fn)
        status, out, error = "OK", b"", None
        try:
            if func is None:
                raise LookupError("this worker has no handler for '%s'"
                                  % job.fn)
            if job.cancelled:
                raise Cancelled("cancelled before it started")
            ret = func(job)
            if isinstance(ret, str):
                raise TypeError("the handler for '%s' returned a str; a "
                                "result must be bytes" % job.fn)
            out = b"" if ret is None else bytes(ret)
            if job.cancelled:
                status, out = "CANCELLED", b""
        except Cancelled:
            status, out = "CANCELLED", b""
        except BaseException as e:  # a handler's failure is the job's
            if job.cancelled:
                status, out = "CANCELLED", b""
            else:
                status, out = "ERROR", b""
                error = (str(e) or type(e).__name__)[:MAX_ERROR_TEXT]
        job.finished = True
        key = (job._id, job.attempt)
        with self._lock:
            if job._link.running.get(key) is job:
                del job._link.running[key]
        conn = job._conn
        if conn.closed:
            return  # came on a lost connection: the broker retries it
        res = {"t": "RESULT", "id": job._id, "attempt": job.attempt,
               "status": status}
        if out:
            res["payload"] = out
        if error is not None:
            res["error"] = error
        try:
            try:
                conn.send(res)
            except ValueError as e:
                conn.send({"t": "RESULT", "id": job._id,
                           "attempt": job.attempt, "status": "ERROR",
                           "error": "the result is too large: %s" % e})
        except ConnectionLost:
            pass

    def _shutdown(self):
        with self._lock:
            jobs = [job for link in self._links
                    for job in link.running.values()]
        for job in jobs:
            job.cancel_event.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + self.stop_timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        # Jobs queued but not started when we stopped: drop them.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._stopping = False
        try:
            while True:
                import select
                r, _, _ = select.select([self._wake_r], [], [], 0)
                if not r:
                    break
                os.read(self._wake_r, 4096)
        except OSError:
            pass

    def close(self):
        """Releases the wakeup pipes; call after run() returned."""
        for fd in (self._wake_r, self._wake_w, self._poke_r, self._poke_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.close()
