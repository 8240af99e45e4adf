"""Fixtures: a real patchbayd on a temporary unix socket (as tests/harness.c
starts it: -l unix:DIR/pb.sock --ready-file DIR/ready), the C CLI, and
Python workers run in threads. Everything is stopped and removed after each
test, failed or not."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PKG))
sys.path.insert(0, PKG)  # the package from the source tree, not installed


BUILD = os.environ.get("PATCHBAY_BUILDDIR", os.path.join(ROOT, "build"))
PATCHBAYD = os.environ.get("PATCHBAYD",
                           os.path.join(BUILD, "broker", "patchbayd"))
PATCHBAY_CLI = os.environ.get("PATCHBAY_CLI",
                              os.path.join(BUILD, "clients", "patchbay"))


class Broker:
    def __init__(self, args=()):
        # A short directory: unix socket paths are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="pbpy-")
        self.sock = os.path.join(self.dir, "pb.sock")
        self.endpoint = "unix:" + self.sock
        self.ready = os.path.join(self.dir, "ready")
        self.log = os.path.join(self.dir, "broker.log")
        self.args = list(args)
        self.proc = None

    def start(self):
        if not os.access(PATCHBAYD, os.X_OK):
            pytest.fail("no patchbayd at %s (set PATCHBAYD)" % PATCHBAYD)
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [PATCHBAYD, "-l", self.endpoint, "--ready-file", self.ready]
            + self.args, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                pytest.fail("patchbayd exited at startup: %s" % self.text())
            if time.monotonic() > deadline:
                pytest.fail("patchbayd was not ready in 10 s")
            time.sleep(0.01)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        """SIGKILL: no BYE, no goodbye to anyone (a crash). The socket file
        stays; start() again on it works (patchbayd removes a stale one)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def make_broker():
    made = []

    def make(*args):
        b = Broker(args)
        made.append(b)
        b.start()
        return b
    yield make
    for b in made:
        try:
            b.cleanup()
        except Exception:  # stop the others all the same
            if b.proc is not None:
                b.proc.kill()


@pytest.fixture
def broker(make_broker):
    return make_broker()


@pytest.fixture
def two_brokers(make_broker):
    """Two patchbayd, A and B, each on its own temporary socket: for
    endpoint lists ("A,B"). Both are stopped (or killed) after the test."""
    return make_broker(), make_broker()


@pytest.fixture
def workers():
    """start(worker) runs a patchbay.Worker in a thread until registered;
    all are stopped after the test."""
    started = []

    def start(w):
        t = w.start(timeout=10)
        started.append((w, t))
        return w
    yield start
    for w, t in started:
        w.stop()
        t.join(10)
        w.close()


@pytest.fixture
def procs():
    """spawn(argv, **kw): a subprocess killed after the test."""
    made = []

    def spawn(argv, **kw):
        p = subprocess.Popen(argv, **kw)
        made.append(p)
        return p
    yield spawn
    for p in made:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def cli():
    if not os.access(PATCHBAY_CLI, os.X_OK):
        pytest.fail("no patchbay CLI at %s (set PATCHBAY_CLI)" % PATCHBAY_CLI)
    return PATCHBAY_CLI
