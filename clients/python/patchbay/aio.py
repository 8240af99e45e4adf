"""asyncio variants: AsyncClient and AsyncWorker.

They are thin layers over Client and Worker, which keep their own threads
(the reader, the handler pool): an AsyncJob awaits the Client's Job future
(asyncio.wrap_future), progress callbacks are moved to the event loop with
call_soon_threadsafe, and an AsyncWorker runs `async def` handlers on the
event loop from its pool threads (run_coroutine_threadsafe). Sending a
frame is a short blocking write to the socket, done in the caller's
thread."""

import asyncio
import concurrent.futures
import functools
import signal
import threading

from .client import Client
from .errors import Cancelled, PatchbayError
from .worker import Worker


class AsyncJob:
    """A submitted job: `await job` gives the Result (OK) or raises the
    status's exception. Cancelling the awaiting task sends CANCEL."""

    def __init__(self, job, loop):
        self.job = job
        self.id = job.id
        self.fn = job.fn
        self._fut = asyncio.wrap_future(job, loop=loop)

    def __await__(self):
        return self._fut.__await__()

    def done(self):
        return self.job.done()

    def cancel(self):
        """Sends CANCEL (the job then ends with the broker's answer)."""
        return self.job.cancel()

    async def outcome(self):
        """The Result whatever its status (never raises a job failure)."""
        try:
            await asyncio.shield(self._fut)
        except PatchbayError:
            pass
        return self.job.outcome(0)


class AsyncClient:
    """The asyncio Client: `c = await AsyncClient.connect(endpoint)`, or
    `async with await AsyncClient.connect() as c:`. Same arguments and
    exceptions as Client (a list of brokers, spread=True; submit() fails
    over after a lost broker, a short blocking connect in the caller's
    thread)."""

    def __init__(self, client, loop):
        self.client = client
        self._loop = loop

    @classmethod
    async def connect(cls, endpoint=None, name=None, token=None,
                      timeout=5.0, spread=False):
        loop = asyncio.get_running_loop()
        c = await loop.run_in_executor(None, functools.partial(
            Client, endpoint, name=name, token=token, timeout=timeout,
            spread=spread))
        return cls(c, loop)

    def submit(self, fn, payload=b"", timeout_ms=None, retries=None,
               priority=None, nowait=False, detach=False, on_progress=None,
               meta=None, trace=False, **more):
        """Like Client.submit() (more: delay_ms, run_at, retry_on_error,
        backoff_ms, unique); returns an AsyncJob (or, detached, the
        uuid.UUID, after the broker's ACCEPTED: one round trip, on this
        thread). on_progress(payload) is called on the event loop."""
        cb = None
        if on_progress is not None:
            loop = self._loop

            def cb(p):
                loop.call_soon_threadsafe(on_progress, p)
        job = self.client.submit(fn, payload, timeout_ms=timeout_ms,
                                 retries=retries, priority=priority,
                                 nowait=nowait, detach=detach,
                                 on_progress=cb, meta=meta, trace=trace,
                                 **more)
        return job if detach else AsyncJob(job, self._loop)

    async def run(self, fn, payload=b"", timeout_ms=None, retries=None,
                  priority=None, nowait=False, on_progress=None, meta=None,
                  trace=False):
        """Runs one job: the Result when OK, else the status's exception.
        Wrap it in asyncio.wait_for() for a local bound: cancelling it
        sends CANCEL."""
        return await self.submit(fn, payload, timeout_ms=timeout_ms,
                                 retries=retries, priority=priority,
                                 nowait=nowait, on_progress=on_progress,
                                 meta=meta, trace=trace)

    def cancel(self, job):
        return self.client.cancel(job.job if isinstance(job, AsyncJob)
                                  else job)

    async def sync(self, timeout=5.0):
        await self._loop.run_in_executor(None, self.client.sync, timeout)

    @property
    def pending(self):
        return self.client.pending

    @property
    def endpoint(self):
        """The broker in use (see Client)."""
        return self.client.endpoint

    @property
    def connected(self):
        return self.client.connected

    async def close(self):
        await self._loop.run_in_executor(None, self.client.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class AsyncWorker:
    """The asyncio Worker: handlers may be `async def` (run on the event
    loop; cancelled with CancelledError when the job is cancelled, which
    answers CANCELLED) or plain functions (run in the pool threads, as in
    Worker). `await worker.run()` serves until stop(), SIGTERM/SIGINT, or
    the task running it is cancelled. Same arguments as Worker."""

    def __init__(self, endpoint=None, **kw):
        self.worker = Worker(endpoint, **kw)
        self._loop = None

    @property
    def registered(self):
        return self.worker.registered

    @property
    def serving(self):
        return self.worker.serving

    def handler(self, fn):
        def deco(func):
            self.add_handler(fn, func)
            return func
        return deco

    def add_handler(self, fn, func):
        if asyncio.iscoroutinefunction(func):
            self.worker.add_handler(fn, functools.partial(self._call, func))
        else:
            self.worker.add_handler(fn, func)

    def _call(self, func, job):
        """In a pool thread: runs the coroutine on the loop, cancelling it
        when the job is cancelled."""
        fut = asyncio.run_coroutine_threadsafe(func(job), self._loop)
        while True:
            try:
                return fut.result(timeout=0.05)
            except concurrent.futures.TimeoutError:
                if job.cancelled:
                    fut.cancel()
            except concurrent.futures.CancelledError:
                raise Cancelled("cancelled")

    async def run(self, install_signals=True):
        self._loop = loop = asyncio.get_running_loop()
        done = loop.create_future()

        def target():
            try:
                self.worker.run(install_signals=False)
                res = (None, None)
            except BaseException as e:
                res = (None, e)
            loop.call_soon_threadsafe(
                lambda: done.done() or (done.set_exception(res[1])
                                        if res[1] else done.set_result(None)))
        sigs = []
        if install_signals and \
                threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self.stop)
                    sigs.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        t = threading.Thread(target=target, daemon=True,
                             name="patchbay-async-worker")
        t.start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self.stop()
            await done
            raise
        finally:
            for sig in sigs:
                loop.remove_signal_handler(sig)

    def stop(self):
        self.worker.stop()

    def close(self):
        self.worker.close()
