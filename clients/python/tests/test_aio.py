"""AsyncClient and AsyncWorker against a real patchbayd."""

import asyncio
import time

import pytest

import patchbay
from test_patchbay import echo_worker


def test_async_client(broker, workers):
    workers(echo_worker(broker.endpoint, capacity=4))

    async def main():
        seen = []
        async with await patchbay.AsyncClient.connect(broker.endpoint) as c:
            r = await c.run("upper", b"async")
            assert r.payload == b"ASYNC"
            jobs = [c.submit("upper", b"%d" % i) for i in range(100)]
            res = await asyncio.gather(*jobs)
            assert [x.payload for x in res] == [b"%d" % i for i in range(100)]
            r = await c.run("steps", b"20", on_progress=seen.append)
            assert r.payload == b"done"
            with pytest.raises(patchbay.JobError, match="bad input: z"):
                await c.run("fail", b"z")
            # a local bound: cancelling the wait sends CANCEL
            j = c.submit("wait", b"10")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(j._fut), 0.3)
            j.cancel()
            assert (await j.outcome()).status == "CANCELLED"
        assert seen == [b"%d" % i for i in range(20)]
    asyncio.run(main())


def test_async_worker(broker):
    async def main():
        w = patchbay.AsyncWorker(broker.endpoint, capacity=4)
        cancelled = []

        @w.handler("aupper")
        async def aupper(job):
            await asyncio.sleep(0.01)
            job.progress(b"half")
            return job.payload.upper()

        @w.handler("await")
        async def await_(job):
            job.progress(b"started")
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(job.id)
                raise
            return b"slept"

        @w.handler("plain")
        def plain(job):
            return b"plain " + job.payload

        task = asyncio.create_task(w.run())
        while not w.registered.is_set():
            await asyncio.sleep(0.01)
        async with await patchbay.AsyncClient.connect(broker.endpoint) as c:
            seen = []
            r = await c.run("aupper", b"x", on_progress=seen.append)
            assert r.payload == b"X" and seen == [b"half"]
            assert (await c.run("plain", b"y")).payload == b"plain y"
            rs = await asyncio.gather(*[c.submit("aupper", b"%d" % i)
                                        for i in range(20)])
            assert len(rs) == 20
            started = asyncio.Event()
            j = c.submit("await", b"", on_progress=lambda p: started.set())
            await asyncio.wait_for(started.wait(), 5)
            j.cancel()
            with pytest.raises(patchbay.Cancelled):
                await j
            assert cancelled == [j.id]
        t0 = time.monotonic()
        w.stop()
        await task
        assert time.monotonic() - t0 < 3
        w.close()
    asyncio.run(main())
