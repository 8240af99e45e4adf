"""A Python worker serving two functions, 'upper' and 'count'.

    python3 worker.py [ENDPOINT]

Runs until SIGTERM or Ctrl-C. Without ENDPOINT it uses the default broker
($PATCHBAY_BROKER, $PATCHBAY_SOCKET, ...), or the connection in
$PATCHBAY_FD when patchbayd spawned it."""
import sys

import patchbay

endpoint = sys.argv[1] if len(sys.argv) > 1 else None
worker = patchbay.Worker(endpoint, name="example-worker", capacity=4)


@worker.handler("upper")
def upper(job):
    return job.payload.upper()


@worker.handler("count")
def count(job):
    n = int(job.payload or b"3")
    if n < 0:
        raise ValueError("cannot count to %d" % n)   # the job's ERROR text
    for i in range(1, n + 1):
        if job.wait_cancelled(0.05):   # sleeps 50 ms unless cancelled
            return b""                 # answered CANCELLED
        job.progress(b"%d/%d" % (i, n))
    return b"counted to %d" % n


worker.run()
