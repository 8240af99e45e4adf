"""Client: submits jobs (RUN) and receives one result per job.

One background thread per Client reads the connection: it delivers RESULTs
to their Job futures, calls progress callbacks, answers the broker's PINGs
and notices a lost broker. Every public method may be called from any
thread. Given a list of brokers, a Client uses one at a time and fails over
to the next on the first submit after a loss (a new connection, a new
reader thread)."""

import concurrent.futures
import os
import random
import sys
import threading
import time
import traceback
import uuid

from . import wire
from .errors import (BadRequest, ConnectError, ConnectionLost, JobTimeout,
                     PatchbayError, ProtocolError, exception_for)

RUN_MARGIN_S = 5.0  # run() waits timeout_ms plus this before giving up
ACK_MARGIN_S = 5.0  # a detached submit waits its timeout plus this for ACCEPTED


class Result:
    """One job's outcome: id (uuid.UUID), status ("OK", ...), payload
    (bytes), attempts (int), error (str or None)."""

    __slots__ = ("id", "status", "payload", "attempts", "error")

    def __init__(self, id, status, payload=b"", attempts=0, error=None):
        self.id = id
        self.status = status
        self.payload = payload
        self.attempts = attempts
        self.error = error

    @property
    def ok(self):
        """True for OK, and for a detached job's ACCEPTED."""
        return self.status in ("OK", "ACCEPTED")

    def exception(self):
        """The exception for this status, or None when OK."""
        if self.ok:
            return None
        return exception_for(self.status, self.error or "", self.attempts,
                             self.id, self.payload)

    def raise_for_status(self):
        """Returns self when OK, raises the status's exception otherwise."""
        exc = self.exception()
        if exc is not None:
            raise exc
        return self

    def __repr__(self):
        return "Result(id=%s, status=%s, attempts=%d, payload=%r%s)" % (
            self.id, self.status, self.attempts, self.payload[:32],
            ", error=%r" % self.error if self.error else "")


class Job(concurrent.futures.Future):
    """A submitted job: a concurrent.futures.Future whose result() is the
    Result when the job ends OK and raises the status's exception
    (JobError, JobTimeout, ...) otherwise. Works with
    concurrent.futures.wait() and as_completed().

    cancel() asks the broker to cancel the job and returns at once; the job
    still ends with the broker's answer (Cancelled, or its real result if it
    finished first). cancelled() is therefore always False: look at
    outcome().status."""

    def __init__(self, client, job_id, fn, on_progress, meta=None):
        super().__init__()
        self.client = client
        self.id = job_id
        self.fn = fn
        self.on_progress = on_progress
        self.meta = meta or {}    # what was sent, traceparent included
        self._outcome = None

    def _finish(self, res):
        self._outcome = res
        if res.ok:
            self.set_result(res)
        else:
            self.set_exception(res.exception())

    def outcome(self, timeout=None):
        """The Result, whatever its status (never raises a job failure;
        raises concurrent.futures.TimeoutError if not done in time)."""
        try:
            self.result(timeout)
        except PatchbayError:
            pass
        return self._outcome

    def cancel(self):
        """Sends CANCEL for this job unless it is done. True if sent."""
        if self.done():
            return False
        return self.client.cancel(self)

    def __repr__(self):
        return "<Job %s fn=%s %s>" % (
            self.id, self.fn,
            self._outcome.status if self._outcome else "pending")


def _check_payload(payload):
    if payload is None:
        return b""
    if isinstance(payload, str):
        raise TypeError("payload must be bytes, not str (the broker closes "
                        "the connection of a client that sends a str "
                        "payload): encode it, e.g. payload.encode()")
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TypeError("payload must be bytes, not %s" % type(payload).__name__)


def new_traceparent():
    """A new W3C traceparent, "00-<trace-id>-<parent-id>-01", with random
    ids (never all zero), as libpatchbay's pb_traceparent_generate()."""
    while True:
        trace_id, parent_id = os.urandom(16), os.urandom(8)
        if any(trace_id) and any(parent_id):
            return "00-%s-%s-01" % (trace_id.hex(), parent_id.hex())


def _check_meta(meta, trace):
    """The RUN's meta map: meta (a dict of str to str, or None) plus a new
    traceparent when trace and it has none. The broker checks the rest of
    the rules (docs/protocol.md, meta) and answers BAD_REQUEST."""
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise TypeError("meta must be a dict of str to str, not %s"
                        % type(meta).__name__)
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("meta must be a dict of str to str (got %r: "
                            "%r)" % (k, v))
    meta = dict(meta)
    if trace and "traceparent" not in meta:
        meta["traceparent"] = new_traceparent()
    return meta


def _check_uint(name, v, hi=0xFFFFFFFF):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise ValueError("%s must be an integer from 0 to %d (got %r)"
                         % (name, hi, v))
    return v


class _Session:
    """One connection of a Client to one broker of its list: the reader
    thread and the jobs in flight there. A lost session is never reused:
    failing over makes a new one."""

    def __init__(self, conn, index):
        self.conn = conn
        self.index = index        # in Client.endpoints
        self.jobs = {}            # id bytes -> Job
        self.pongs = {}           # n -> threading.Event
        self.statuses = {}        # id bytes -> [threading.Event, JOB]
        self.failure = None       # why the connection is gone
        self.bye = None
        self.thread = None


class Client:
    """A connection to the broker as a client.

    Client(endpoint=None, name=None, token=None, timeout=5.0, spread=False):
    endpoint "unix:PATH", "tcp:HOST:PORT" or "tcp:[V6]:PORT", or a list of
    up to 16 of them, "A,B,..." (None: the default, see
    patchbay.default_endpoint()); name is the HELLO name (default: the
    program name), token the HELLO token (default $PATCHBAY_TOKEN); timeout
    bounds connecting and the handshake, per broker, in seconds. Raises
    ValueError for a malformed endpoint or list, ConnectError or
    ProtocolError (a refused HELLO).

    With a list, the client uses one broker at a time: the first that takes
    it, or with spread=True the list walked from a random place (so that
    many clients spread over the brokers). When that broker is lost, the
    jobs in flight there end Disconnected (never resubmitted: they may have
    run) and the next submit() or run() fails over to the next broker of
    the list (with one endpoint: the same one again). `endpoint` is the
    broker in use, `endpoints` the list."""

    def __init__(self, endpoint=None, name=None, token=None, timeout=5.0,
                 spread=False):
        self._wake_r = self._wake_w = -1
        self.endpoints = tuple(wire.split_endpoints(endpoint))
        self._name = name
        self._token = token
        self._timeout = timeout
        start = 0
        if spread and len(self.endpoints) > 1:
            start = random.SystemRandom().randrange(len(self.endpoints))
        conn, at = wire.connect_any(self.endpoints, start, "client", name,
                                    token, timeout)
        self._lock = threading.Lock()
        self._failover_lock = threading.RLock()
        self._sync_n = 1 << 31    # sync()'s PINGs; the reader's start at 1
        self._closed = None       # set by close(): the client stays closed
        self._s = None            # the current _Session
        self.endpoint = None
        self._wake_r, self._wake_w = os.pipe()
        self._start(conn, at)

    @classmethod
    def connect(cls, endpoint=None, name=None, token=None, timeout=5.0,
                spread=False):
        return cls(endpoint, name=name, token=token, timeout=timeout,
                   spread=spread)

    # -- properties ------------------------------------------------------

    @property
    def server(self):
        return self._s.conn.server

    @property
    def heartbeat_ms(self):
        return self._s.conn.heartbeat_ms

    @property
    def max_frame(self):
        return self._s.conn.max_frame

    @property
    def pending(self):
        """How many submitted (not detached) jobs have no result yet."""
        with self._lock:
            return len(self._s.jobs)

    @property
    def connected(self):
        """True while the connection to the current broker is up (after a
        loss, the next submit() or run() fails over)."""
        return self._closed is None and self._s.failure is None

    # -- jobs ------------------------------------------------------------

    def submit(self, fn, payload=b"", timeout_ms=None, retries=None,
               priority=None, nowait=False, detach=False, on_progress=None,
               meta=None, trace=False, delay_ms=None, run_at=None,
               retry_on_error=None, backoff_ms=None, unique=None):
        """Sends a RUN without waiting. Returns a Job (a Future), or, with
        detach=True, the job's uuid.UUID once the broker has taken it (its
        ACCEPTED: one round trip); a refusal raises its exception
        (QueueFull, NoWorker with nowait, BadRequest, ...). No result or
        progress comes for a detached job.

        timeout_ms: the broker answers TIMEOUT after it (None/0: none);
        retries: re-dispatches after a lost worker; priority: -100..100;
        nowait: NO_WORKER instead of queueing; on_progress(payload) is
        called, in order, from the reader thread for each PROGRESS;
        meta: a dict of str to str the worker gets with the job (at most 32
        keys of A-Z a-z 0-9 _ . - and 4096 bytes; a meta the broker refuses
        ends the job BadRequest); trace=True adds a new W3C traceparent
        unless meta has one (Job.meta holds what was sent).

        delay_ms, or run_at (Unix time in ms): the job is due then, its
        timeout counting from then. retry_on_error (detached jobs only):
        tries again after the worker's ERROR or a TIMEOUT, backoff_ms
        before the first retry (doubling), then the broker's dead list.
        unique: while a live job of fn has this key, join it (its result;
        detached, its id) instead of making another.

        When the broker was lost, fails over first (see Client); raises
        ConnectionLost (ConnectError) when no broker of the list can be
        reached, and after close()."""
        payload = _check_payload(payload)
        if not isinstance(fn, str) or not fn:
            raise TypeError("fn must be a non-empty str")
        meta = _check_meta(meta, trace)
        job_id = uuid.uuid4()
        pkt = {"t": "RUN", "id": job_id.bytes, "fn": fn, "payload": payload}
        if meta:
            pkt["meta"] = meta
        if timeout_ms:
            pkt["timeout_ms"] = _check_uint("timeout_ms", timeout_ms)
        if retries:
            pkt["retries"] = _check_uint("retries", retries)
        if priority:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise ValueError("priority must be an integer (got %r)"
                                 % (priority,))
            pkt["priority"] = priority
        if detach:
            pkt["detach"] = True
            pkt["ack"] = True   # ACCEPTED, or the refusal
        if nowait:
            pkt["nowait"] = True
        for key, value in (("delay_ms", delay_ms), ("run_at", run_at),
                           ("retry_on_error", retry_on_error),
                           ("backoff_ms", backoff_ms)):
            if value:
                pkt[key] = _check_uint(key, value)
        if unique is not None:
            if not isinstance(unique, str) or not unique:
                raise TypeError("unique must be a non-empty str")
            pkt["unique"] = unique

        def new_job():
            return Job(self, job_id, fn, None if detach else on_progress,
                       meta)
        job = self._send_run(pkt, job_id, new_job)
        if not detach:
            return job
        try:
            res = job.result(max(self._timeout, 1.0) + ACK_MARGIN_S)
        except concurrent.futures.TimeoutError:
            self._forget(job_id)
            raise PatchbayError("the broker did not acknowledge the "
                                "detached job within %.1f s (a broker "
                                "that predates ACCEPTED?)" % (
                                    max(self._timeout, 1.0) + ACK_MARGIN_S))
        return res.id

    def run(self, fn, payload=b"", timeout_ms=None, retries=None,
            priority=None, nowait=False, on_progress=None, meta=None,
            trace=False):
        """Runs one job and waits for it. Returns the Result when it ends
        OK; raises the status's exception otherwise (JobError, JobTimeout,
        WorkerLost, NoWorker, QueueFull, Cancelled, Disconnected...). The
        wait is bounded by timeout_ms plus 5 s when set, else unbounded;
        when that runs out the job is cancelled and JobTimeout raised."""
        job = self.submit(fn, payload, timeout_ms=timeout_ms,
                          retries=retries, priority=priority, nowait=nowait,
                          on_progress=on_progress, meta=meta, trace=trace)
        wait = timeout_ms / 1000.0 + RUN_MARGIN_S if timeout_ms else None
        try:
            return job.result(wait)
        except concurrent.futures.TimeoutError:
            self.cancel(job)
            self._forget(job.id)
            raise JobTimeout("no result within %.1f s (local wait)" % wait,
                             status="TIMEOUT", job_id=job.id)
        except KeyboardInterrupt:
            self.cancel(job)
            raise

    def cancel(self, job):
        """Asks the broker to cancel a job of this client (a Job or its
        uuid.UUID). Returns True if CANCEL was sent. The Job still ends
        with the broker's answer."""
        s = getattr(job, "_session", None) if isinstance(job, Job) else None
        job_id = job.id if isinstance(job, Job) else job
        if isinstance(job_id, uuid.UUID):
            job_id = job_id.bytes
        if s is None:
            s = self._s
        if self._closed is not None or s.failure is not None:
            return False
        try:
            s.conn.send({"t": "CANCEL", "id": job_id})
        except ConnectionLost:
            return False
        return True

    def sync(self, timeout=5.0):
        """Waits until the broker has processed everything sent so far (a
        PING round trip): after it, detached jobs sent before are known to
        be accepted (or dropped). Raises ConnectionLost (the broker was lost:
        this does not fail over) or TimeoutError."""
        s = self._s
        self._check_alive(s)
        ev = threading.Event()
        with self._lock:
            self._sync_n += 1
            n = self._sync_n
            s.pongs[n] = ev
        try:
            s.conn.send({"t": "PING", "n": n})
            if not ev.wait(timeout):
                raise TimeoutError("no PONG from the broker in %.1f s"
                                   % timeout)
        finally:
            with self._lock:
                s.pongs.pop(n, None)
        self._check_alive(s)

    def status(self, job_id, timeout=5.0):
        """Where the job with this id (a uuid.UUID) is, as the broker says
        (STATUS): a dict with "state" ("queued", "delayed", "running",
        "dead", "done" or "unknown") and, as they apply, "fn", "attempts",
        "priority", "age_ms", "status", "error" and "payload" (a finished
        detached job's outcome, kept for the broker's result_ttl). Raises
        ConnectionLost or TimeoutError."""
        s = self._s
        self._check_alive(s)
        key = job_id.bytes
        slot = [threading.Event(), None]
        with self._lock:
            s.statuses[key] = slot
        try:
            s.conn.send({"t": "STATUS", "id": key})
            if not slot[0].wait(timeout):
                raise TimeoutError("no answer to STATUS in %.1f s"
                                   % timeout)
        finally:
            with self._lock:
                s.statuses.pop(key, None)
        self._check_alive(s)
        return {k: v for k, v in slot[1].items() if k not in ("t", "id")}

    # -- lifetime --------------------------------------------------------

    def close(self):
        """Closes the connection; the broker cancels the jobs still
        running. Jobs without a result end Disconnected. A closed client
        stays closed (it does not fail over)."""
        if self._closed is None:
            self._closed = ConnectionLost("the client was closed")
        with self._failover_lock:
            s = self._s
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if s is not None:
            if s.thread is not None and \
                    threading.current_thread() is not s.thread:
                s.thread.join(5)
            s.conn.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                if fd >= 0:
                    os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._wake_w >= 0:
                self.close()
        except Exception:
            pass

    # -- internals -------------------------------------------------------

    def _start(self, conn, at):
        """Makes conn (to endpoints[at]) the current session and starts its
        reader."""
        s = _Session(conn, at)
        s.thread = threading.Thread(target=self._reader, args=(s,),
                                    daemon=True,
                                    name="patchbay-client-reader")
        self._s = s
        self.endpoint = conn.where
        s.thread.start()

    def _check_alive(self, s=None):
        if self._closed is not None:
            raise self._closed
        s = self._s if s is None else s
        if s.failure is not None:
            raise s.failure

    def _session(self):
        """The current session, after failing over if its broker was lost:
        to the next broker of the list (wrapping, the lost one last)."""
        while True:
            s = self._s
            if self._closed is not None:
                raise self._closed
            if s.failure is None:
                return s
            # Let the old reader deliver its jobs' DISCONNECTED first,
            # unless we are that reader (a callback that submits); not
            # under the lock, so that such a callback may fail over
            # meanwhile.
            if threading.current_thread() is not s.thread:
                s.thread.join(5)
            with self._failover_lock:
                if self._closed is not None:
                    raise self._closed
                if self._s is not s:
                    continue  # another thread failed over
                try:
                    conn, at = wire.connect_any(
                        self.endpoints, (s.index + 1) % len(self.endpoints),
                        "client", self._name, self._token, self._timeout)
                except (ConnectionLost, ProtocolError) as e:
                    raise ConnectError("no broker to fail over to: %s"
                                       % e) from e
                if self._closed is not None:
                    conn.close()
                    raise self._closed
                self._start(conn, at)

    def _send_run(self, pkt, job_id, new_job):
        """Records the job (new_job(): its Job; None: detached) on the
        current session and sends its RUN there. A RUN that could not be
        sent because the connection had just died was not submitted: it is
        sent again, once, after failing over (as a new Job: the lost
        session may already have finished the first)."""
        for again in (False, True):
            s = self._session()
            job = None
            if new_job is not None:
                job = new_job()
                job._session = s
                with self._lock:
                    s.jobs[job_id.bytes] = job
            try:
                s.conn.send(pkt)
            except ValueError as e:
                self._forget(job_id, s)
                raise BadRequest(str(e), status="BAD_REQUEST", job_id=job_id)
            except ConnectionLost as e:
                self._forget(job_id, s)
                self._lose(s, e)
                if self._closed is not None:
                    raise self._closed
                if again:
                    raise
                continue
            return job_id if job is None else job

    def _lose(self, s, why):
        """The session's connection failed under a sender: the reader
        finishes the session's jobs."""
        with self._lock:
            if s.failure is None:
                s.failure = why
        s.conn.close()

    def _forget(self, job_id, s=None):
        s = self._s if s is None else s
        with self._lock:
            s.jobs.pop(job_id.bytes, None)

    def _reader(self, s):
        conn = s.conn
        hb = max(conn.heartbeat_ms / 1000.0, 0.05)
        pinged = False
        failure = None
        try:
            while s.failure is None and self._closed is None:
                pkt = conn.recv(hb / 2, wakeup=self._wake_r)
                if pkt is None:
                    silent = time.monotonic() - conn.last_rx
                    if silent > 4 * hb:
                        raise ConnectionLost("%s went silent for %.1f s" % (
                            conn.where, silent))
                    if silent > 2 * hb and not pinged:
                        conn.ping()
                        pinged = True
                    continue
                pinged = False
                self._handle(s, pkt)
        except PatchbayError as e:
            if s.bye is not None and isinstance(e, ConnectionLost):
                e = ConnectionLost("the broker said BYE (%s)" % s.bye)
            failure = e
        except Exception as e:  # a bug: do not leave futures hanging
            failure = ConnectionLost("reader failed: %r" % e)
        # Closed before the jobs are taken: a RUN sent after this fails,
        # one sent before is among the jobs finished here.
        conn.close()
        with self._lock:
            if s.failure is None:
                s.failure = failure or self._closed or \
                    ConnectionLost("the connection to %s is closed"
                                   % conn.where)
            jobs, s.jobs = s.jobs, {}
            pongs = list(s.pongs.values())
            pongs += [slot[0] for slot in s.statuses.values()]
        why = str(s.failure)
        for job in jobs.values():
            job._finish(Result(job.id, "DISCONNECTED", b"", 0, why))
        for ev in pongs:
            ev.set()

    def _handle(self, s, pkt):
        t = pkt["t"]
        if t == "JOB":
            with self._lock:
                slot = s.statuses.get(pkt.get("id"))
            if slot is not None:
                slot[1] = pkt
                slot[0].set()
        elif t == "ACCEPTED":
            with self._lock:
                job = s.jobs.pop(pkt.get("id"), None)
            if job is not None:
                # Joined (unique): the id to know it by is the live job's.
                jid = pkt.get("joined")
                job._finish(Result(uuid.UUID(bytes=jid) if jid else job.id,
                                   "ACCEPTED"))
        elif t == "RESULT":
            rid = pkt.get("id")
            with self._lock:
                job = s.jobs.pop(rid, None)
            if job is not None:
                job._finish(Result(job.id, pkt.get("status", "?"),
                                   pkt.get("payload") or b"",
                                   pkt.get("attempts", 0), pkt.get("error")))
        elif t == "PROGRESS":
            with self._lock:
                job = s.jobs.get(pkt.get("id"))
            if job is not None and job.on_progress is not None:
                try:
                    job.on_progress(pkt.get("payload") or b"")
                except Exception:
                    traceback.print_exc(file=sys.stderr)
        elif t == "PING":
            s.conn.send({"t": "PONG", "n": pkt.get("n", 0)})
        elif t == "PONG":
            with self._lock:
                ev = s.pongs.get(pkt.get("n"))
            if ev is not None:
                ev.set()
        elif t == "BYE":
            s.bye = pkt.get("reason", "")
        elif t == "ERROR":
            if pkt.get("code") == "NOT_FOUND":
                return  # a CANCEL that came too late: harmless
            raise ProtocolError(pkt.get("msg", ""), code=pkt.get("code"))


def connect(endpoint=None, name=None, token=None, timeout=5.0, spread=False):
    """Client(endpoint, name=..., token=..., timeout=..., spread=...)."""
    return Client(endpoint, name=name, token=token, timeout=timeout,
                  spread=spread)
