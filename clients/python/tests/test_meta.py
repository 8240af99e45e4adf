"""Job metadata and trace context (meta=, trace=, Job.meta) against a real
patchbayd, from Python to Python and across to the C CLI (see conftest.py)."""

import json
import re
import subprocess

import pytest

from conftest import cli

import patchbay

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


def meta_worker(endpoint):
    w = patchbay.Worker(endpoint, name="pytest-meta")

    @w.handler("meta")
    def meta(job):
        return json.dumps(job.meta, sort_keys=True).encode()
    return w


def test_meta_reaches_the_worker(broker, workers):
    workers(meta_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        r = c.run("meta", b"", meta={"user": "alice", "req.id": "r-1",
                                     "note": "caf\u00e9"})
        assert json.loads(r.payload) == {"user": "alice", "req.id": "r-1",
                                         "note": "caf\u00e9"}
        # No meta: the worker sees an empty dict, not None.
        assert json.loads(c.run("meta", b"").payload) == {}


def test_trace_adds_a_traceparent_unless_given(broker, workers):
    workers(meta_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        job = c.submit("meta", b"", trace=True)
        got = json.loads(job.result(10).payload)
        assert TRACEPARENT.match(got["traceparent"]), got
        assert job.meta["traceparent"] == got["traceparent"]
        # Two traced jobs get two traces.
        other = json.loads(c.run("meta", b"", trace=True).payload)
        assert other["traceparent"][3:35] != got["traceparent"][3:35]
        given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        kept = json.loads(c.run("meta", b"", trace=True, meta={
            "traceparent": given, "tracestate": "congo=t61rcWkgMzE"}).payload)
        assert kept == {"traceparent": given,
                        "tracestate": "congo=t61rcWkgMzE"}


def test_meta_the_broker_refuses_is_bad_request(broker, workers):
    workers(meta_worker(broker.endpoint))
    with patchbay.Client(broker.endpoint) as c:
        with pytest.raises(patchbay.BadRequest) as e:
            c.run("meta", b"", meta={"bad key": "x"})
        assert "meta key 'bad key' may only hold A-Z a-z 0-9 _ . -" in \
            str(e.value)
        with pytest.raises(patchbay.BadRequest) as e:
            c.run("meta", b"", meta={"k%d" % i: "v" for i in range(33)})
        assert "meta has 33 keys, more than 32" in str(e.value)
        with pytest.raises(patchbay.BadRequest) as e:
            c.run("meta", b"", meta={"traceparent": "00-abc-def-01"})
        assert "not a W3C traceparent" in str(e.value)
        # The refusal is an answer, not a protocol error: the client goes on.
        assert json.loads(c.run("meta", b"", meta={"ok": "1"}).payload) == \
            {"ok": "1"}
        with pytest.raises(TypeError):
            c.submit("meta", b"", meta={"n": 1})


def test_c_cli_meta_reaches_a_python_worker(broker, workers):
    workers(meta_worker(broker.endpoint))
    out = subprocess.run(
        [cli(), "run", "-b", broker.endpoint, "meta", "--meta", "a=1",
         "--meta", "b-c=x=y", "--trace", "--json", ""],
        capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["status"] == "OK" and res["attempts"] == 1
    assert res["payload_encoding"] == "utf-8"
    seen = json.loads(res["payload"])
    assert seen == res["meta"]
    assert seen["a"] == "1" and seen["b-c"] == "x=y"
    assert TRACEPARENT.match(seen["traceparent"])


def test_python_meta_reaches_a_c_exec_worker(broker, procs):
    procs([cli(), "worker", "envmeta", "-b", broker.endpoint, "--exec",
           'printf "%s|%s" "$PATCHBAY_META_TENANT_ID" "$TRACEPARENT"'],
          stderr=subprocess.DEVNULL)
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with patchbay.Client(broker.endpoint) as c:
        r = c.run("envmeta", b"", timeout_ms=10000,
                  meta={"tenant.id": "t-42", "traceparent": tp})
        assert r.payload.decode() == "t-42|" + tp
