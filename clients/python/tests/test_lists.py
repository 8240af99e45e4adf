"""Several brokers: endpoint lists "A,B,..." for Client, Worker, admin()
and the asyncio variants, against two real patchbayd (the two_brokers
fixture)."""

import asyncio
import collections
import threading
import time

import pytest

import patchbay
from test_patchbay import echo_worker


def wait_for(cond, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("%s did not hold within %.0f s" % (what, timeout))
        time.sleep(0.02)


def workers_on(broker):
    return patchbay.admin("status", endpoint=broker.endpoint)["workers"]


def test_split_endpoints(monkeypatch):
    split = patchbay.split_endpoints
    assert split("unix:/a") == ["unix:/a"]
    assert split("unix:/a,tcp:h:1") == ["unix:/a", "tcp:h:1"]
    assert split(" unix:/a ,\ttcp:[::1]:7 ") == ["unix:/a", "tcp:[::1]:7"]
    sixteen = ",".join("unix:/s%d" % i for i in range(16))
    assert len(split(sixteen)) == 16
    cases = [
        ("", "empty endpoint"),
        ("unix:/a,,unix:/b", "the broker list has an empty entry"),
        ("unix:/a,", "the broker list has an empty entry"),
        (" , unix:/a", "the broker list has an empty entry"),
        (sixteen + ",unix:/s16", "the broker list has more than 16 brokers"),
        ("unix:/a,unix:/" + "x" * 400,
         "the broker list has an entry longer than 383 bytes"),
        ("unix:/a, unix:/a", "the broker list has unix:/a twice"),
        ("unix:/a,tcp:h", "tcp endpoint 'h': missing :PORT"),
        ("unix:/a,tcp://h:1", "endpoint 'tcp://h:1': write tcp:HOST:PORT, "
         "not tcp://"),
        ("unix:/a,/b.sock", "endpoint '/b.sock': expected unix:PATH or "
         "tcp:HOST:PORT"),
        ("unix:/" + "p" * 107, "socket path longer than 107 bytes"),
        ("tls:h:7401", "the Python client does not speak TLS; use a tcp: "
         "or unix: endpoint, or the C library or the patchbay CLI for tls:"),
    ]
    for text, sentence in cases:
        with pytest.raises(ValueError) as ei:
            split(text)
        assert str(ei.value).endswith(sentence), (text, str(ei.value))
    # Refused before anything connects, by every entry point.
    with pytest.raises(ValueError, match="twice"):
        patchbay.Client("unix:/nowhere/a,unix:/nowhere/a")
    with pytest.raises(ValueError, match="empty entry"):
        patchbay.Worker("unix:/nowhere/a,")
    with pytest.raises(ValueError, match="empty entry"):
        patchbay.admin("status", endpoint=",unix:/nowhere/a")
    # $PATCHBAY_BROKER may hold a list: returned as it is, split by the
    # users of the default endpoint.
    monkeypatch.setenv("PATCHBAY_BROKER", "unix:/a, unix:/b")
    assert patchbay.default_endpoint() == "unix:/a, unix:/b"
    assert split(None) == ["unix:/a", "unix:/b"]
    monkeypatch.setenv("PATCHBAY_BROKER", "unix:/a,unix:/a")
    with pytest.raises(ValueError, match="twice"):
        patchbay.Client()


def test_client_skips_a_dead_broker(two_brokers, workers, tmp_path):
    a, b = two_brokers
    dead = "unix:%s/dead.sock" % tmp_path
    workers(echo_worker(b.endpoint))
    with patchbay.Client("%s,%s" % (dead, b.endpoint)) as c:
        assert c.endpoint == b.endpoint
        assert c.endpoints == (dead, b.endpoint)
        assert c.run("upper", b"second").payload == b"SECOND"
    # None reachable: every failure named, joined with "; ".
    dead2 = "unix:%s/dead2.sock" % tmp_path
    with pytest.raises(patchbay.ConnectError) as ei:
        patchbay.Client("%s,%s" % (dead, dead2))
    assert str(ei.value) == ("cannot connect to %s: No such file or "
                             "directory; cannot connect to %s: No such file "
                             "or directory" % (dead, dead2))
    # admin(): the first broker that answers.
    st = patchbay.admin("status", endpoint="%s,%s" % (dead, a.endpoint))
    assert st["workers"] == 0
    assert patchbay.admin("status", endpoint="%s,%s" % (
        dead, b.endpoint))["workers"] == 1


def test_client_refused_by_one_broker(make_broker, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("s3cret\n")
    tf.chmod(0o600)
    locked = make_broker("--token-file", str(tf))
    dead = "unix:%s/dead.sock" % tmp_path
    with pytest.raises(patchbay.ProtocolError) as ei:
        patchbay.Client("%s,%s" % (dead, locked.endpoint), token="wrong")
    # A refusal says more than an unreachable broker.
    assert ei.value.code == "AUTH_FAILED"
    assert str(ei.value).startswith("AUTH_FAILED: cannot connect to %s: "
                                    % dead)
    assert "%s refused the handshake" % locked.endpoint in str(ei.value)


def test_client_fails_over_during_a_stream(two_brokers, workers):
    """A client on A,B; A is killed while jobs stream: every job ends once,
    OK or Disconnected (none lost, none run twice), and the jobs after that
    run on B."""
    a, b = two_brokers
    w = echo_worker("%s,%s" % (a.endpoint, b.endpoint), capacity=2)
    ran = collections.Counter()
    ran_lock = threading.Lock()

    @w.handler("note")
    def note(job):
        with ran_lock:
            ran[job.id] += 1
        time.sleep(0.01)
        return job.payload
    workers(w)
    wait_for(lambda: len(w.serving) == 2, what="the worker on A and B")

    ends = collections.Counter()
    ends_lock = threading.Lock()

    def count_end(job):
        with ends_lock:
            ends[job.id] += 1

    jobs = []
    errors = []
    killed = threading.Event()

    def stream(c, n):
        try:
            for i in range(n):
                j = c.submit("note", b"%d" % i)
                j.add_done_callback(count_end)
                jobs.append(j)
                if i == n // 3:
                    killed.wait(10)
                time.sleep(0.003)
        except BaseException as e:  # reported below, not lost in a thread
            errors.append(e)

    with patchbay.Client("%s,%s" % (a.endpoint, b.endpoint)) as c:
        assert c.endpoint == a.endpoint
        t = threading.Thread(target=stream, args=(c, 300))
        t.start()
        wait_for(lambda: c.pending >= 5, what="jobs in flight on A")
        a.kill()
        killed.set()
        t.join(60)
        assert not t.is_alive()
        assert errors == []
        for j in jobs:
            j.outcome(30)
        assert c.endpoint == b.endpoint
        later = [c.submit("note", b"later %d" % i) for i in range(20)]
        assert [j.result(10).payload for j in later] == \
            [b"later %d" % i for i in range(20)]
    statuses = collections.Counter(j.outcome().status for j in jobs)
    assert set(statuses) <= {"OK", "DISCONNECTED"}, statuses
    assert statuses["DISCONNECTED"] >= 1, statuses
    assert statuses["OK"] >= 100, statuses
    assert len({j.id for j in jobs}) == len(jobs) == 300
    assert all(ends[j.id] == 1 for j in jobs), "a job ended twice"
    for i, j in enumerate(jobs):
        if j.outcome().ok:
            assert ran[j.id] == 1
            assert j.outcome().payload == b"%d" % i
        else:
            assert ran[j.id] <= 1
            assert isinstance(j.exception(), patchbay.Disconnected)
    # Only jobs in flight on A when it died were lost: the stream went on
    # on B (it resumed at job 101, right after the kill).
    assert all(j.outcome().ok for j in jobs[150:])


def test_client_reconnects_to_its_only_broker(broker, workers):
    workers(echo_worker(broker.endpoint))
    c = patchbay.Client(broker.endpoint)
    try:
        assert c.run("upper", b"one").payload == b"ONE"
        broker.stop()
        wait_for(lambda: not c.connected, what="the loss seen")
        with pytest.raises(patchbay.ConnectionLost,
                           match="no broker to fail over to"):
            c.submit("upper", b"x")
        broker.start()
        wait_for(lambda: workers_on(broker) == 1, what="the worker back")
        assert c.run("upper", b"two").payload == b"TWO"
        assert c.connected
    finally:
        c.close()
    # A client that was closed stays closed.
    with pytest.raises(patchbay.ConnectionLost, match="closed"):
        c.submit("upper", b"x")
    assert not c.connected


def test_worker_serves_two_brokers(two_brokers, workers):
    a, b = two_brokers
    a.stop()  # not up when the worker starts
    w = workers(echo_worker("%s,%s" % (a.endpoint, b.endpoint), capacity=3))
    assert w.brokers == (a.endpoint, b.endpoint)
    assert w.serving == [b.endpoint]
    with patchbay.Client(b.endpoint) as c:
        assert c.run("upper", b"b first").payload == b"B FIRST"
    a.start()
    wait_for(lambda: len(w.serving) == 2, what="the worker on A")
    assert workers_on(a) == 1 and workers_on(b) == 1
    # Each broker sees the whole capacity.
    for x in (a, b):
        ws = patchbay.admin("workers", endpoint=x.endpoint)
        assert [v["capacity"] for v in ws] == [3]
    # Jobs from either broker, also at once, each answered where it came.
    with patchbay.Client(a.endpoint) as ca, \
            patchbay.Client(b.endpoint) as cb:
        ja = [ca.submit("upper", b"a%d" % i) for i in range(50)]
        jb = [cb.submit("upper", b"b%d" % i) for i in range(50)]
        assert [j.result(10).payload for j in ja] == \
            [b"A%d" % i for i in range(50)]
        assert [j.result(10).payload for j in jb] == \
            [b"B%d" % i for i in range(50)]
    # A dies: B is still served.
    a.kill()
    wait_for(lambda: w.serving == [b.endpoint], what="A seen gone")
    assert w.connected
    with patchbay.Client(b.endpoint) as cb:
        assert cb.run("upper", b"still b").payload == b"STILL B"
    # A comes back on the same socket: the worker is back on it.
    a.start()
    wait_for(lambda: len(w.serving) == 2, what="the worker back on A")
    with patchbay.Client(a.endpoint) as ca:
        assert ca.run("upper", b"a again", timeout_ms=5000).payload == \
            b"A AGAIN"
    assert w.connections == 3  # B once, A twice


def test_worker_job_of_a_lost_broker(two_brokers, workers):
    """A job running for A when A dies is cancelled (its answer cannot go
    out) while the worker goes on serving B."""
    a, b = two_brokers
    w = workers(echo_worker("%s,%s" % (a.endpoint, b.endpoint)))
    wait_for(lambda: len(w.serving) == 2, what="the worker on A and B")
    started = threading.Event()
    ca = patchbay.Client(a.endpoint)
    try:
        j = ca.submit("wait", b"10", on_progress=lambda p: started.set())
        assert started.wait(5)
        a.kill()
        assert j.outcome(5).status == "DISCONNECTED"
    finally:
        ca.close()
    with patchbay.Client(b.endpoint) as cb:
        r = cb.run("wait", b"0.1", timeout_ms=5000)
        assert r.payload == b"not cancelled"


def test_worker_stop_with_a_broker_down(two_brokers, tmp_path):
    a, b = two_brokers
    dead = "unix:%s/dead.sock" % tmp_path
    w = echo_worker("%s,%s" % (dead, b.endpoint))
    t = w.start(timeout=10)
    try:
        assert w.serving == [b.endpoint]
    finally:
        t0 = time.monotonic()
        w.stop()
        t.join(10)
        w.close()
    assert not t.is_alive()
    assert time.monotonic() - t0 < 3


def test_worker_connect_timeout_with_a_list(tmp_path):
    w = echo_worker("unix:%s/a.sock,unix:%s/b.sock" % (tmp_path, tmp_path),
                    connect_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(patchbay.ConnectError,
                       match="no broker of the 2 listed is reachable"):
        w.run(install_signals=False)
    assert 0.3 <= time.monotonic() - t0 < 3
    w.close()


def test_worker_refused_by_one_broker(make_broker, tmp_path):
    """A broker that refuses the worker is given up; the others are
    served. Refused by all: run() raises."""
    tf = tmp_path / "token"
    tf.write_text("s3cret\n")
    tf.chmod(0o600)
    locked = make_broker("--token-file", str(tf))
    open_b = make_broker()
    w = echo_worker("%s,%s" % (locked.endpoint, open_b.endpoint),
                    token="wrong")
    t = w.start(timeout=10)
    try:
        assert w.serving == [open_b.endpoint]
        with patchbay.Client(open_b.endpoint) as c:
            assert c.run("upper", b"x").payload == b"X"
    finally:
        w.stop()
        t.join(10)
        w.close()
    w = echo_worker(locked.endpoint, token="wrong")
    with pytest.raises(patchbay.ProtocolError) as ei:
        w.run(install_signals=False)
    assert ei.value.code == "AUTH_FAILED"
    w.close()


def test_spread(two_brokers, workers):
    a, b = two_brokers
    w = workers(echo_worker("%s,%s" % (a.endpoint, b.endpoint),
                            capacity=4))
    wait_for(lambda: len(w.serving) == 2, what="the worker on A and B")
    lst = "%s,%s" % (a.endpoint, b.endpoint)
    used = collections.Counter()
    for i in range(20):
        with patchbay.Client(lst, spread=True) as c:
            assert c.run("upper", b"s%d" % i).payload == b"S%d" % i
            used[c.endpoint] += 1
    assert set(used) == {a.endpoint, b.endpoint}, used
    for x in (a, b):
        st = patchbay.admin("status", endpoint=x.endpoint)
        assert st["results"]["OK"] == used[x.endpoint]
    # Without spread: always the first.
    for _ in range(3):
        with patchbay.Client(lst) as c:
            assert c.endpoint == a.endpoint


def test_async_lists(two_brokers, tmp_path):
    a, b = two_brokers
    dead = "unix:%s/dead.sock" % tmp_path

    async def main():
        w = patchbay.AsyncWorker("%s,%s" % (a.endpoint, b.endpoint))

        @w.handler("aupper")
        async def aupper(job):
            return job.payload.upper()

        task = asyncio.create_task(w.run())
        while len(w.serving) < 2:
            await asyncio.sleep(0.01)
        for ep in ("%s,%s" % (dead, a.endpoint), b.endpoint):
            async with await patchbay.AsyncClient.connect(
                    ep, spread=True) as c:
                assert c.endpoint in (a.endpoint, b.endpoint)
                assert (await c.run("aupper", b"x")).payload == b"X"
        async with await patchbay.AsyncClient.connect(
                "%s,%s" % (a.endpoint, b.endpoint)) as c:
            assert c.endpoint == a.endpoint
            a.kill()
            while c.connected:
                await asyncio.sleep(0.01)
            assert (await c.run("aupper", b"y")).payload == b"Y"
            assert c.endpoint == b.endpoint
        w.stop()
        await task
        w.close()
    asyncio.run(main())
