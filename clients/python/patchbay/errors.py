"""Exceptions: one base class, one subclass per job status, and the
connection-level errors."""


class PatchbayError(Exception):
    """Base of every exception this package raises on purpose.

    Attributes (None / 0 where they do not apply):
      status:   the job status name ("ERROR", "TIMEOUT", ...) or None
      error:    the text: the worker's or broker's sentence
      attempts: how many dispatches the job took
      job_id:   the job's uuid.UUID
      payload:  bytes the worker sent along with a failure (b"" if none)
    """

    status = None

    def __init__(self, error="", status=None, attempts=0, job_id=None,
                 payload=b""):
        super().__init__(error)
        if status is not None:
            self.status = status
        self.error = error
        self.attempts = attempts
        self.job_id = job_id
        self.payload = payload

    def __str__(self):
        text = self.error or ""
        if self.status is not None:
            return "%s (%s)" % (text, self.status) if text else self.status
        return text


class JobFailed(PatchbayError):
    """A job ended with a status other than OK (base of the per-status
    exceptions)."""


class JobError(JobFailed):
    status = "ERROR"


class Cancelled(JobFailed):
    """The job was cancelled. A worker handler may also raise it to answer
    CANCELLED."""
    status = "CANCELLED"


class JobTimeout(JobFailed):
    status = "TIMEOUT"


class WorkerLost(JobFailed):
    status = "WORKER_LOST"


class NoWorker(JobFailed):
    status = "NO_WORKER"


class QueueFull(JobFailed):
    status = "QUEUE_FULL"


class BadRequest(JobFailed):
    status = "BAD_REQUEST"


class DuplicateId(JobFailed):
    status = "DUPLICATE_ID"


class ShuttingDown(JobFailed):
    status = "SHUTTING_DOWN"


class StoreFailed(JobFailed):
    """The broker could not write a detached job to its store (a full or
    failing disk): the job was not taken."""
    status = "STORE_FAILED"


class ConnectionLost(PatchbayError):
    """The connection to the broker is gone (EOF, BYE, a socket error), or
    could not be made."""


class ConnectError(ConnectionLost):
    """Connecting or the handshake failed (no broker, refused HELLO)."""


class Disconnected(JobFailed, ConnectionLost):
    """Local status DISCONNECTED: the broker went away before the job's
    result arrived. The job may or may not have run."""
    status = "DISCONNECTED"


class ProtocolError(PatchbayError):
    """The broker sent an ERROR packet (`code`, `error` = its msg), or
    something this library cannot decode (code None)."""

    def __init__(self, error="", code=None, **kw):
        super().__init__(error, **kw)
        self.code = code

    def __str__(self):
        return "%s: %s" % (self.code, self.error) if self.code else self.error


class AdminError(PatchbayError):
    """An ADMIN verb was refused (REPLY ok:false)."""


STATUS_EXCEPTIONS = {
    cls.status: cls for cls in (JobError, Cancelled, JobTimeout, WorkerLost,
                                NoWorker, QueueFull, BadRequest, DuplicateId,
                                ShuttingDown, StoreFailed, Disconnected)
}


def exception_for(status, error="", attempts=0, job_id=None, payload=b""):
    """The exception instance for a non-OK status (JobFailed for an
    unknown one)."""
    cls = STATUS_EXCEPTIONS.get(status, JobFailed)
    return cls(error, status=status, attempts=attempts, job_id=job_id,
               payload=payload)
