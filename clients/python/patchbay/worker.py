"""Worker: registers functions and answers the jobs the broker pushes.

Threads: the thread that calls run() owns the connection's reading side: it
takes RUN and CANCEL, answers PINGs and reconnects. Handlers run in a pool
of `capacity` daemon threads (one thread when capacity is 1), so a handler
may block for as long as its job allows without the broker losing sight of
the worker. Sending (RESULT, PROGRESS, PONG) is serialised by a lock, so
job.progress() may be called from any thread."""

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
        if self.finished or self._conn is not self._worker._conn:
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


class Worker:
    """Worker(endpoint=None, name=None, token=None, capacity=1,
    connect_timeout=None, timeout=5.0, stop_timeout=5.0).

    endpoint None: the descriptor in $PATCHBAY_FD when set (a worker the
    broker spawned; its loss is final), else the default endpoint.
    connect_timeout: how long run() waits for a broker that is not up at
    start, in seconds (None: for ever, with backoff; 0: fail at once).
    timeout bounds each connect and handshake; stop_timeout is how long
    run() waits for running handlers after stop()."""

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
        self._handlers = {}
        self._conn = None
        self._running = {}            # (id bytes, attempt) -> Job
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._threads = []
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
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
        conn = self._conn
        if conn is not None:
            try:
                self._register(conn)
            except ConnectionLost:
                pass

    # -- running ---------------------------------------------------------

    def run(self, install_signals=True):
        """Connects, registers and serves until stop() (or SIGTERM/SIGINT
        when install_signals and called from the main thread), reconnecting
        with backoff (100 ms doubling to 5 s) when the broker goes away.
        Returns after stop(). Raises ProtocolError when the broker refuses
        the worker (a wrong token...), ConnectError when connect_timeout
        runs out, ConnectionLost when an inherited connection (PATCHBAY_FD)
        closes."""
        if not self._handlers:
            raise ValueError("no handler registered")
        old = {}
        if install_signals and \
                threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                old[sig] = signal.signal(sig, lambda *_: self.stop())
        self._start_pool()
        started = time.monotonic()
        backoff = 0.0
        try:
            while not self._stopping:
                try:
                    conn = self._connect()
                except (ConnectionLost, ProtocolError) as e:
                    if self._inherited is not None or (
                            isinstance(e, ProtocolError)
                            and e.code not in TRANSIENT_CODES):
                        raise
                    if self.connections == 0 and \
                            self.connect_timeout is not None and \
                            time.monotonic() - started >= \
                            self.connect_timeout:
                        raise
                    backoff = min(BACKOFF_MAX_S,
                                  max(BACKOFF_MIN_S, backoff * 2))
                    delay = backoff * random.uniform(0.75, 1.25)
                    if self.connections == 0 and \
                            self.connect_timeout is not None:
                        delay = min(delay, max(0.0, started +
                                               self.connect_timeout -
                                               time.monotonic()))
                    log.info("cannot reach the broker (%s); retrying in "
                             "%.0f ms", e, delay * 1000)
                    self._sleep(delay)
                    continue
                backoff = 0.0
                self._serve(conn)
                if self._inherited is not None and not self._stopping:
                    raise ConnectionLost("the inherited connection "
                                         "(PATCHBAY_FD) closed")
                if not self._stopping:
                    # Not at once: a broker that is restarting is not up yet.
                    backoff = BACKOFF_MIN_S / 2
        finally:
            self._shutdown()
            for sig, h in old.items():
                signal.signal(sig, h)

    def start(self, timeout=10.0):
        """Runs run() in a daemon thread and waits until registered.
        Returns the thread. For embedding and tests; stop() ends it."""
        t = threading.Thread(target=self.run, kwargs={"install_signals":
                                                      False},
                             daemon=True, name="patchbay-worker")
        t.start()
        if not self.registered.wait(timeout):
            raise TimeoutError("the worker did not register in %.1f s"
                               % timeout)
        return t

    def stop(self):
        """Makes run() return: the connection is closed (the broker retries
        the running jobs or answers WORKER_LOST), running jobs are flagged
        cancelled, and run() waits up to stop_timeout for their handlers.
        Safe from any thread and from a signal handler."""
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    @property
    def connected(self):
        return self.registered.is_set()

    # -- internals -------------------------------------------------------

    def _sleep(self, seconds):
        import select
        try:
            select.select([self._wake_r], [], [], seconds)
        except (OSError, ValueError):
            time.sleep(seconds)

    def _connect(self):
        if self._inherited is not None:
            fd, self._inherited = self._inherited, -1
            if fd < 0:
                raise ConnectionLost("the inherited connection "
                                     "(PATCHBAY_FD) is closed")
            return wire.adopt(fd, "worker", self.name, self.timeout)
        return wire.connect(self.endpoint, "worker", self.name, self.token,
                            self.timeout)

    def _register(self, conn):
        conn.send({"t": "REGISTER", "fns": sorted(self._handlers),
                   "capacity": self.capacity})

    def _serve(self, conn):
        self._register(conn)
        self._conn = conn
        self.connections += 1
        self.registered.set()
        log.info("serving %s (capacity %d) at %s", ", ".join(
            sorted(self._handlers)), self.capacity, conn.where)
        hb = max(conn.heartbeat_ms / 1000.0, 0.05)
        pinged = False
        try:
            while not self._stopping:
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
                self._handle(conn, pkt)
        except (ConnectionLost, ProtocolError) as e:
            if not self._stopping:
                log.warning("lost the broker: %s", e)
        finally:
            self.registered.clear()
            self._conn = None
            conn.close()
            with self._lock:
                lost = list(self._running.values())
                self._running.clear()
            for job in lost:
                job.cancel_event.set()  # its answer can no longer go out

    def _handle(self, conn, pkt):
        t = pkt["t"]
        if t == "RUN":
            job = Job(self, conn, pkt)
            with self._lock:
                self._running[(job._id, job.attempt)] = job
            self._queue.put(job)
        elif t == "CANCEL":
            with self._lock:
                job = self._running.get((bytes(pkt.get("id", b"")),
                                         int(pkt.get("attempt", 0))))
            if job is not None:
                job.cancel_event.set()
        elif t == "PING":
            conn.send({"t": "PONG", "n": pkt.get("n", 0)})
        elif t == "BYE":
            log.info("the broker said BYE (%s)", pkt.get("reason", ""))
        elif t == "ERROR":
            log.warning("the broker sent ERROR %s: %s", pkt.get("code"),
                        pkt.get("msg"))

    def _start_pool(self):
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.capacity:
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
        with self._lock:
            self._running.pop((job._id, job.attempt), None)
        conn = job._conn
        if conn is not self._conn:
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
            jobs = list(self._running.values())
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
        """Releases the wakeup pipe; call after run() returned."""
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.close()
