"""A Python client for the example worker (worker.py).

    python3 client.py [ENDPOINT]
"""
import sys

import patchbay

endpoint = sys.argv[1] if len(sys.argv) > 1 else None

with patchbay.Client(endpoint, name="example-client") as client:
    # One job, waiting for its result.
    result = client.run("upper", b"hello", timeout_ms=5000)
    print(result.payload.decode())

    # Progress arrives in order, on the client's reader thread.
    result = client.run("count", b"3",
                        on_progress=lambda p: print("progress", p.decode()))
    print(result.payload.decode())

    # Many jobs in flight: submit() returns futures.
    jobs = [client.submit("upper", word) for word in (b"a", b"b", b"c")]
    print(" ".join(job.result().payload.decode() for job in jobs))

    # A failure is an exception named after its status.
    try:
        client.run("count", b"-1")
    except patchbay.JobError as e:
        print("failed:", e.error)
