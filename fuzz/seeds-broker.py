#!/usr/bin/env python3
"""Writes the seed inputs of fuzz-broker into fuzz/corpus-broker/.

Each seed is a small program in fuzz-broker.c's input language (see the
comment at the top of that file): a settings byte, then ops, one byte
each (peer + 6 * op) followed by the op's own bytes. Peers 0 and 1 are
clients, 2 and 3 workers, 4 the admin, 5 the one whose HELLO picks.
Run it again after changing the language; the fuzzer's own finds go in
the same directory under their hash names.
"""
import os
import sys

CONNECT, HELLO, RAW, RUN, CANCEL, REGISTER, RESULT, PROGRESS, PING, PONG, \
    ADMIN, CLOSE, ADVANCE, STALL, STOP, PUMP = range(16)


def op(peer, code, *args):
    return bytes([code * 6 + peer]) + bytes(args)


def hello(peer, flags=0):
    return op(peer, HELLO, flags)


def run(peer, k, fn=0, payload=b"", timeout=None, retries=None,
        priority=None, detach=False, nowait=False, meta=None, ack=False):
    f = fn & 3
    if ack:  # with detach: ACCEPTED or the refusal comes back
        k |= 0x80
    if meta is not None:  # one of fuzz-broker.c's fb_metas
        k |= 0x08 | (meta & 7) << 4
    rest = b""
    if payload:
        f |= 0x04
        rest += bytes([len(payload)]) + payload
    if timeout is not None:
        f |= 0x08
        rest += bytes([timeout])
    if retries is not None:
        f |= 0x10
        rest += bytes([retries])
    if priority is not None:
        f |= 0x20
        rest += bytes([priority & 0xff])
    if detach:
        f |= 0x40
    if nowait:
        f |= 0x80
    return op(peer, RUN, k, f) + rest


def register(peer, mask=1, capacity=1):
    return op(peer, REGISTER, (mask & 7) | ((capacity - 1) & 3) << 3)


def result(peer, held=0, status=0, payload=b"", error=b""):
    b = status & 3
    rest = b""
    if payload:
        b |= 0x04
        rest += bytes([len(payload)]) + payload
    if error:
        b |= 0x08
        rest += bytes([len(error)]) + error
    return op(peer, RESULT, b, held) + rest


def stale_result(peer, k, attempt, status=0):
    return op(peer, RESULT, 0x80 | status, k, attempt)


def progress(peer, held=0, payload=b"50%"):
    return op(peer, PROGRESS, 0, held, len(payload)) + payload


def admin(peer, verb, args=False, pool_instance=False, instances=0):
    b = verb | (0x10 if args else 0) | (0x20 if pool_instance else 0)
    return op(peer, ADMIN, b) + (bytes([instances]) if args else b"")


def advance(ms=None, seconds=None):
    """Moves the clock by ms (< 128) or by whole seconds (< 128)."""
    if seconds is not None:
        return op(0, ADVANCE, 0x80 | seconds)
    assert ms < 128
    return op(0, ADVANCE, ms)


SEEDS = {
    # A client's job runs on a worker and comes back OK.
    "ok": bytes([0]) + hello(0) + hello(2) + register(2, 1, 2) +
    run(0, 0, payload=b"hello") + result(2, payload=b"olleh"),
    # Cancelled while queued, then while running.
    "cancel": bytes([0]) + hello(0) + hello(2) + run(0, 1) +
    op(0, CANCEL, 1) + register(2) + run(0, 2) + op(0, CANCEL, 2) +
    result(2, status=2),
    # A timeout while queued and one while running; the late answer.
    "timeout": bytes([0]) + hello(0) + run(0, 3, timeout=10) +
    advance(50) + hello(2) + register(2) + run(0, 4, timeout=25) +
    advance(120) + result(2) + advance(seconds=6),
    # The worker dies: retried on the other one, then lost.
    "retry": bytes([0]) + hello(0) + hello(2) + hello(3) +
    register(2) + run(0, 5, retries=1) + op(2, CLOSE, 1) +
    register(3) + op(3, CLOSE, 1) + advance(10),
    # Duplicate ids, another client's cancel, a stale result.
    "duplicate": bytes([0]) + hello(0) + hello(1) + hello(2) +
    register(2) + run(0, 6) + run(0, 6) + run(1, 6) + op(1, CANCEL, 6) +
    stale_result(2, 6, 9) + result(2),
    # Priorities, nowait, detach, bad requests.
    "options": bytes([0]) + hello(0) + run(0, 0, nowait=True) +
    run(0, 1, fn=3) + run(0, 2, priority=101) + hello(2) +
    register(2, 7, 4) + run(0, 3, fn=1, priority=-100) +
    run(0, 4, fn=2, detach=True) + progress(2) + result(2, 1, 1, error=b"no"),
    # The admin's verbs.
    "admin": bytes([0]) + hello(4) + b"".join(admin(4, v) for v in
    range(13)) + admin(4, 5, True, True) + admin(4, 9, True, False, 3) +
    admin(4, 4, True),
    # Heartbeats: silence, PINGs, drops; a HELLO that never comes.
    "heartbeat": bytes([0x41]) + hello(0) + hello(2) + register(2) +
    advance(60) + op(0, PING, 7) + advance(100) + op(2, PONG, 1) +
    advance(seconds=2),
    # A slow consumer with a small output cap.
    "slow": bytes([0x08]) + hello(0) + op(0, STALL) + hello(2) +
    register(2, 1, 4) + b"".join(run(0, k % 8, payload=b"x" * 15) +
    result(2, 0, 0, payload=b"y" * 15) for k in range(40)) +
    op(0, STALL),
    # The broker stops with jobs queued and running.
    "stop": bytes([0]) + hello(0) + hello(2) + register(2) + run(0, 0) +
    run(0, 1) + op(0, STOP) + result(2) + op(5, CONNECT),
    # A token: right, wrong, missing.
    "token": bytes([0x10]) + hello(0) + hello(1, 0x10) + hello(2, 0x20) +
    run(0, 0),
    # Raw bytes: a bad frame, a huge length, half a frame, a half-close.
    "raw": bytes([0x02]) + op(5, RAW, 5, 0, 0, 0, 1, 0xc1) +
    op(1, RAW, 4, 0x7f, 0xff, 0xff, 0xff) + hello(0) +
    op(0, RAW, 3, 0, 0, 0) + op(2, CLOSE, 0) + hello(3, 0x80),
    # The sixth peer as each role, a second HELLO, names.
    "roles": bytes([0]) + hello(5, 0x00) + op(5, CONNECT) + hello(5, 0x04) +
    op(5, CONNECT) + hello(5, 0x48) + bytes([5]) + b"admin" + hello(5) +
    op(0, RUN, 0, 0) + hello(0) + hello(2, 0x40) + bytes([4]) + b"w\x00\n1",
    # Meta: carried to the worker (and again on a retry), or refused.
    "meta": bytes([0]) + hello(0) + hello(2) + hello(3) + register(2) +
    run(0, 0, meta=0) + result(2) + run(0, 1, meta=2, retries=1) +
    op(2, CLOSE, 1) + register(3) + result(3) +
    b"".join(run(0, 2 + m, meta=m) for m in range(1, 8)),
    # A full queue and no worker at all.
    "queue": bytes([0x24]) + hello(0) + run(0, 0) + run(0, 1) + run(0, 2) +
    advance(5) + hello(1) + run(1, 3, nowait=True),
    # Detached jobs with ack: taken, refused (full, nowait, duplicate),
    # waiting past no_worker_wait, then run by a worker.
    "detached": bytes([0x24]) + hello(0) +
    run(0, 0, detach=True, ack=True) + run(0, 1, detach=True, ack=True) +
    run(0, 2, detach=True, ack=True) + run(0, 0, detach=True, ack=True) +
    run(0, 3, fn=1, detach=True, ack=True, nowait=True) +
    run(0, 4, fn=2, detach=True) + advance(seconds=2) + hello(2) +
    register(2, 7, 4) + result(2) + result(2),
    # The same with a store (bit 7): ACCEPTED after each turn's commit;
    # a worker that goes away while running one, stopped with jobs left.
    "store": bytes([0xa4]) + hello(0) +
    run(0, 0, detach=True, ack=True) + run(0, 1, detach=True, ack=True) +
    run(0, 2, detach=True, ack=True) + run(0, 0, detach=True, ack=True) +
    run(0, 4, fn=2, detach=True) + hello(2) + register(2, 7, 4) +
    result(2) + op(2, CLOSE, 0) + run(0, 5, detach=True, ack=True) +
    op(0, STOP),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus-broker")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
