"""The Python package against a real patchbayd (see conftest.py)."""

import os
import resource
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import PKG, cli

import patchbay


def echo_worker(endpoint, capacity=1, **kw):
    w = patchbay.Worker(endpoint, name="pytest-worker", capacity=capacity,
                        **kw)

    @w.handler("upper")
    def upper(job):
        return job.payload.upper()

    @w.handler("fail")
    def fail(job):
        raise ValueError("bad input: " + job.payload.decode())

    @w.handler("sleep")
    def sleep(job):
        # Blocks without looking at the cancel flag: the worker must still
        # answer the broker's PINGs meanwhile.
        time.sleep(float(job.payload.decode()))
        return b"slept"

    @w.handler("wait")
    def wait(job):
        job.progress(b"started")
        job.wait_cancelled(float(job.payload.decode() or "10"))
        return b"not cancelled"

    @w.handler("steps")
    def steps(job):
        n = int(job.payload.decode())
        for i in range(n):
            job.progress(b"%d" % i)
        return b"done"

    @w.handler("record")
    def record(job):
        w.recorded.append(job.payload)
        return b""
    w.recorded = []
    return w


def test_round_trip(broker, workers):
    workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        r = c.run("upper", b"hello", timeout_ms=5000)
        assert r.ok and r.status == "OK"
        assert r.payload == b"HELLO"
        assert r.attempts == 1
        assert isinstance(r.id, uuid.UUID)
        # binary-safe, empty payload
        assert c.run("upper", bytes(range(256))).payload == \
            bytes(range(256)).upper()
        assert c.run("upper", b"").payload == b""
        assert c.server.startswith("patchbayd")


def test_client_against_c_worker(broker, procs):
    procs([cli(), "worker", "rev", "--exec", "rev", "-b", broker.endpoint],
          stderr=subprocess.DEVNULL)
    with patchbay.Client(broker.endpoint) as c:
        r = c.run("rev", b"hello\n", timeout_ms=10000)
        assert r.payload == b"olleh\n"


def test_worker_serves_c_run(broker, workers):
    workers(echo_worker(broker.endpoint))
    out = subprocess.run([cli(), "run", "-b", broker.endpoint, "upper",
                          "from c"], capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"FROM C"
    out = subprocess.run([cli(), "run", "-b", broker.endpoint, "fail", "x"],
                         capture_output=True, timeout=10)
    assert out.returncode == 1
    assert b"bad input: x" in out.stderr


def test_many_in_flight(broker, workers):
    workers(echo_worker(broker.endpoint, capacity=8))
    with patchbay.Client(broker.endpoint) as c:
        jobs = [c.submit("upper", b"job %d" % i) for i in range(500)]
        assert len({j.id for j in jobs}) == 500
        for i, j in enumerate(jobs):
            assert j.result(10).payload == b"JOB %d" % i
        assert c.pending == 0
        # concurrent.futures helpers work on Jobs
        import concurrent.futures as cf
        jobs = [c.submit("upper", b"x%d" % i) for i in range(50)]
        done = list(cf.as_completed(jobs, timeout=10))
        assert len(done) == 50


def test_job_error(broker, workers):
    workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        with pytest.raises(patchbay.JobError) as ei:
            c.run("fail", b"boom")
        e = ei.value
        assert e.status == "ERROR"
        assert e.error == "bad input: boom"
        assert e.attempts == 1
        assert isinstance(e, patchbay.JobFailed)
        assert isinstance(e, patchbay.PatchbayError)
        # outcome() gives the Result without raising
        j = c.submit("fail", b"again")
        assert j.outcome(10).status == "ERROR"
        assert j.outcome().error == "bad input: again"
        # the worker still serves after a failure
        assert c.run("upper", b"ok").payload == b"OK"


def test_timeout(broker, workers):
    workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        t0 = time.monotonic()
        with pytest.raises(patchbay.JobTimeout) as ei:
            c.run("wait", b"10", timeout_ms=300)
        assert time.monotonic() - t0 < 3
        assert ei.value.status == "TIMEOUT"


def test_no_worker(broker):
    with patchbay.Client(broker.endpoint) as c:
        with pytest.raises(patchbay.NoWorker) as ei:
            c.run("nobody", b"", nowait=True)
        assert ei.value.attempts == 0


def test_cancel(broker, workers):
    workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        started = threading.Event()
        j = c.submit("wait", b"10", on_progress=lambda p: started.set())
        assert started.wait(5)  # it reached the worker
        assert j.cancel()
        with pytest.raises(patchbay.Cancelled) as ei:
            j.result(5)
        assert ei.value.attempts == 1
        assert j.outcome().status == "CANCELLED"
        assert not j.cancel()  # done: nothing sent
        # a queued job (the worker is busy) is cancelled by the broker
        busy = c.submit("wait", b"0.5")
        queued = c.submit("upper", b"q")
        c.cancel(queued.id)
        assert queued.outcome(5).status == "CANCELLED"
        assert queued.outcome().attempts == 0
        assert busy.result(5).payload == b"not cancelled"


def test_progress_in_order(broker, workers):
    workers(echo_worker(broker.endpoint))
    seen = []
    with patchbay.Client(broker.endpoint) as c:
        r = c.run("steps", b"200", on_progress=seen.append)
        assert r.payload == b"done"
    assert seen == [b"%d" % i for i in range(200)]


def test_long_handler_survives_heartbeat(make_broker, workers):
    b = make_broker("--heartbeat", "200")
    w = workers(echo_worker(b.endpoint))
    with patchbay.Client(b.endpoint) as c:
        assert c.heartbeat_ms == 200
        t0 = time.monotonic()
        r = c.run("sleep", b"1.5", timeout_ms=10000)
        assert r.payload == b"slept"
        assert r.attempts == 1
        assert time.monotonic() - t0 >= 1.5
        # the client also stayed connected while it waited
        assert c.connected
    assert w.connections == 1


def test_detached_acknowledged_or_refused(make_broker):
    """A detached submit returns once the broker has taken the job (its
    ACCEPTED); a refusal raises, and the job was not taken."""
    b = make_broker("--max-queue", "1")
    with patchbay.Client(b.endpoint) as c:
        jid = c.submit("later", b"one", detach=True)
        assert isinstance(jid, uuid.UUID)
        with pytest.raises(patchbay.QueueFull):
            c.submit("later", b"two", detach=True)
        with pytest.raises(patchbay.NoWorker):
            c.submit("nobody", b"x", detach=True, nowait=True)
        assert c.pending == 0
        st = c.status(jid)
        assert st["state"] == "queued" and st["fn"] == "later"
        assert c.status(uuid.uuid4()) == {"state": "unknown"}
        # Delayed, then joined by the same unique key.
        first = c.submit("soon", b"a", detach=True, delay_ms=3600000,
                         unique="k")
        assert c.status(first)["state"] == "delayed"
        assert c.submit("soon", b"b", detach=True, unique="k") == first
        with pytest.raises(patchbay.BadRequest):
            c.submit("soon", b"c", retry_on_error=2).result(5)


def test_detached_survives_kill_with_store(make_broker):
    """With a store, a job the broker ACCEPTED survives kill -9; while the
    store cannot write, a detached submit raises StoreFailed, and what was
    stored before stays."""
    b = make_broker()
    b.stop()
    b.args += ["--store", os.path.join(b.dir, "jobs.db")]
    b.start()
    with patchbay.Client(b.endpoint) as c:
        jid = c.submit("later", b"kept", detach=True, priority=3)
    b.kill()
    b.start()
    with patchbay.Client(b.endpoint) as c:
        st = c.status(jid)
        assert st["state"] == "queued" and st["fn"] == "later"
        assert st["priority"] == 3
        # Writes fail past a file size limit of 0, as on a full disk.
        soft, hard = resource.prlimit(b.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(b.proc.pid, resource.RLIMIT_FSIZE, (0, hard))
        try:
            with pytest.raises(patchbay.StoreFailed) as e:
                c.submit("later", b"refused", detach=True)
            assert "store" in str(e.value)
        finally:
            resource.prlimit(b.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
        assert c.status(jid)["state"] == "queued"


def test_detached(broker, workers):
    w = workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        jid = c.submit("record", b"detached one", detach=True)
        assert isinstance(jid, uuid.UUID)
        assert c.pending == 0
        c.sync()
    deadline = time.monotonic() + 5
    while not w.recorded and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.recorded == [b"detached one"]


def test_worker_reconnects_after_restart(broker, workers):
    w = workers(echo_worker(broker.endpoint))
    assert w.connections == 1
    broker.stop()
    broker.start()  # the same socket path
    deadline = time.monotonic() + 5
    while w.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.connections == 2
    with patchbay.Client(broker.endpoint) as c:
        assert c.run("upper", b"back", timeout_ms=5000).payload == b"BACK"


def test_client_sees_broker_go(broker, workers):
    workers(echo_worker(broker.endpoint))
    c = patchbay.Client(broker.endpoint)
    started = threading.Event()
    j = c.submit("wait", b"10", on_progress=lambda p: started.set())
    assert started.wait(5)
    broker.stop()
    out = j.outcome(10)
    # the broker's last words to a job it will not finish, or our own
    assert out.status in ("SHUTTING_DOWN", "WORKER_LOST", "DISCONNECTED")
    deadline = time.monotonic() + 5
    while c.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(patchbay.ConnectionLost):
        c.submit("upper", b"x")
    c.close()


def test_str_payload_rejected(broker, workers):
    workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        with pytest.raises(TypeError, match="bytes, not str"):
            c.run("upper", "text")
        with pytest.raises(TypeError):
            c.submit("upper", 42)
        # nothing was sent: the connection is still good
        assert c.run("upper", b"fine").payload == b"FINE"


def test_admin_status(broker, workers):
    workers(echo_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        c.run("upper", b"x")
    st = patchbay.admin("status", endpoint=broker.endpoint)
    assert isinstance(st, dict)
    assert st["workers"] == 1
    assert st["results"]["OK"] >= 1
    assert st["results"]["total"] >= 1
    assert "queued" in st and "running" in st
    with pytest.raises(patchbay.AdminError, match="unknown verb"):
        patchbay.admin("no-such-verb", endpoint=broker.endpoint)


def test_connect_errors(tmp_path):
    with pytest.raises(patchbay.ConnectError):
        patchbay.Client("unix:%s/none.sock" % tmp_path)
    with pytest.raises(ValueError, match="write tcp:HOST:PORT"):
        patchbay.Client("tcp://localhost:1")
    assert patchbay.parse_endpoint("tcp:[::1]:7070") == ("tcp", ("::1", 7070))
    assert patchbay.parse_endpoint("unix:/x") == ("unix", "/x")


def test_default_endpoint(monkeypatch):
    for v in ("PATCHBAY_BROKER", "PATCHBAY_SOCKET", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(v, raising=False)
    assert patchbay.default_endpoint() == \
        "unix:/tmp/patchbay-%d/patchbay.sock" % os.getuid()
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/u")
    assert patchbay.default_endpoint() == "unix:/run/u/patchbay.sock"
    monkeypatch.setenv("PATCHBAY_SOCKET", "/s.sock")
    assert patchbay.default_endpoint() == "unix:/s.sock"
    monkeypatch.setenv("PATCHBAY_BROKER", "tcp:h:1")
    assert patchbay.default_endpoint() == "tcp:h:1"


def test_token(make_broker, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("s3cret\n")
    tf.chmod(0o600)
    b = make_broker("--token-file", str(tf))
    with pytest.raises(patchbay.ProtocolError) as ei:
        patchbay.Client(b.endpoint, token="wrong")
    assert ei.value.code == "AUTH_FAILED"
    with patchbay.Client(b.endpoint, token="s3cret") as c:
        assert c.connected


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_examples(broker, procs):
    ex = os.path.join(PKG, "examples")
    wp = procs([sys.executable, os.path.join(ex, "worker.py"),
                broker.endpoint], env=_env())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = patchbay.admin("status", endpoint=broker.endpoint)
        if st["workers"] == 1:
            break
        time.sleep(0.05)
    out = subprocess.run([sys.executable, os.path.join(ex, "client.py"),
                          broker.endpoint], env=_env(), capture_output=True,
                         timeout=15)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == (
        "HELLO\nprogress 1/3\nprogress 2/3\nprogress 3/3\ncounted to 3\n"
        "A B C\nfailed: cannot count to -1\n")
    wp.terminate()  # SIGTERM: a clean stop, status 0
    assert wp.wait(5) == 0


def test_spawned_worker_uses_patchbay_fd(broker):
    ex = os.path.join(PKG, "examples", "worker.py")
    patchbay.admin("spawn", {"id": "pyw", "argv": [
        sys.executable, "-B", "-c",
        "import sys; sys.path.insert(0, %r); sys.argv = [%r]; "
        "exec(open(%r).read())" % (PKG, ex, ex)]},
        endpoint=broker.endpoint)
    try:
        with patchbay.Client(broker.endpoint) as c:
            r = c.run("upper", b"spawned", timeout_ms=10000)
            assert r.payload == b"SPAWNED"
        ws = patchbay.admin("workers", endpoint=broker.endpoint)
        assert any(w["kind"] == "local" for w in ws)
    finally:
        patchbay.admin("stop", {"id": "pyw"}, endpoint=broker.endpoint)


def test_offline_install(tmp_path):
    """pip install --no-build-isolation, with no package index, into a
    venv that sees Debian's msgpack and setuptools."""
    import shutil
    py = sys.executable
    if subprocess.run([py, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("no pip for %s" % py)
    src = tmp_path / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([py, "-m", "venv", "--system-site-packages",
                    "--without-pip", str(venv)], check=True)
    vpy = str(venv / "bin" / "python")
    out = subprocess.run([py, "-m", "pip", "--python", vpy, "install", "-q",
                          "--no-index", "--no-build-isolation", str(src)],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([vpy, "-c", "import patchbay; print(patchbay.__file__)"],
                         capture_output=True, cwd=str(tmp_path), timeout=30)
    assert out.returncode == 0, out.stderr
    assert str(venv) in out.stdout.decode()


def test_docs_show_the_examples():
    """docs/python.md's example blocks are the example files, verbatim."""
    import re
    root = os.path.dirname(os.path.dirname(PKG))
    with open(os.path.join(root, "docs", "python.md")) as f:
        doc = f.read()
    blocks = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```",
                        doc, re.S)
    assert [b[0] for b in blocks] == ["clients/python/examples/client.py",
                                      "clients/python/examples/worker.py"]
    for path, text in blocks:
        with open(os.path.join(root, path)) as f:
            assert f.read() == text, path + " differs from docs/python.md"


def test_handler_answers(broker, workers):
    w = echo_worker(broker.endpoint)

    @w.handler("text")
    def text(job):
        return "a str"

    @w.handler("giveup")
    def giveup(job):
        raise patchbay.Cancelled("giving up")

    @w.handler("none")
    def none(job):
        return None
    workers(w)
    with patchbay.Client(broker.endpoint) as c:
        with pytest.raises(patchbay.JobError, match="must be bytes"):
            c.run("text")
        with pytest.raises(patchbay.Cancelled):
            c.run("giveup")
        assert c.run("none").payload == b""
        big = b"x" * (c.max_frame + 1)
        with pytest.raises(patchbay.BadRequest):
            c.submit("upper", big)
        assert c.run("upper", b"still").payload == b"STILL"
        with pytest.raises(patchbay.NoWorker):
            c.run("text2", nowait=True)
