"""patchbay: a pure-Python client, worker and admin library for the
patchbay job broker (protocol v1, docs/protocol.md). See docs/python.md.

    import patchbay
    with patchbay.Client() as c:
        print(c.run("rev", b"hello").payload)
"""

from .admin import admin
from .aio import AsyncClient, AsyncJob, AsyncWorker
from .client import Client, Job, Result, connect, new_traceparent
from .errors import (AdminError, BadRequest, Cancelled, ConnectError,
                     ConnectionLost, Disconnected, DuplicateId, JobError,
                     JobFailed, JobTimeout, NoWorker, PatchbayError,
                     ProtocolError, QueueFull, ShuttingDown, StoreFailed,
                     WorkerLost,
                     exception_for)
from .wire import default_endpoint, parse_endpoint, split_endpoints
from .worker import Worker
from .worker import Job as WorkerJob

__version__ = "0.1.0"

__all__ = [
    "admin", "AsyncClient", "AsyncJob", "AsyncWorker", "Client", "Job", "Result", "connect", "new_traceparent", "Worker", "WorkerJob",
    "default_endpoint", "parse_endpoint", "split_endpoints", "exception_for",
    "PatchbayError", "JobFailed", "JobError", "Cancelled", "JobTimeout",
    "WorkerLost", "NoWorker", "QueueFull", "BadRequest", "DuplicateId",
    "ShuttingDown", "StoreFailed", "Disconnected", "ConnectionLost", "ConnectError",
    "ProtocolError", "AdminError",
]
