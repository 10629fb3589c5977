"""Every error the orchestrator raises on purpose.

    OrchestratorError                 base; ``str(exc)`` is one line ready for a terminal
    ├── ManifestError                 the manifest (or the command line) is wrong, one line a problem: exit 2
    ├── SourceError                   a bucket or folder cannot be listed or read
    ├── LedgerError                   the ledger file cannot be opened or is not ours
    │   └── UnknownObjectError        the ledger holds no row for the URL asked about
    ├── OutputError                   a file we write (metrics, export) cannot be written
    ├── SchemaError                   a collection description (describe output, schema file) is unreadable
    ├── FooterError                   an object is not a readable parquet file (pre-flight)
    ├── LockHeldError                 another run holds the ledger: exit 75
    └── TargetError                   the import API said no, or could not be reached
        ├── TransientError            worth retrying after a pause (429, 5xx, busy cluster)
        │   ├── AmbiguousError        the call may have created a job: look before retrying
        │   │   └── AmbiguousProtocolError  ... a create's reply broke the protocol
        │   ├── ProtocolError         a reply broke the API's protocol (a field's type, size or range)
        │   ├── UnreachableError      the server could not be reached: nothing was sent
        │   └── ServerFullError       the server holds all the jobs it takes: wait for one to end
        ├── PermanentError            this object will not import as it stands
        │   ├── JobNotFoundError      the server does not know the job (forgotten, or never made)
        │   └── JobTerminalError      a two-phase job already ended: it can no longer be committed/aborted
        └── FatalTargetError          nothing will import (bad API key, unknown cluster): stop the run

Messages never carry secrets: credentials travel as :class:`orchestrator.models.Secret`, whose
``str`` and ``repr`` are masked.
"""

from __future__ import annotations

from collections.abc import Sequence


class OrchestratorError(Exception):
    """Base of every error raised on purpose; the message is for the user."""


class ManifestError(OrchestratorError):
    """The manifest is invalid: the message names the file, the place inside it and the problem."""

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        self.problems: tuple[ManifestError, ...] = (self,)  # every problem found, this one first
        super().__init__(": ".join(part for part in (file, path, problem) if part))

    @classmethod
    def combined(cls, problems: Sequence[ManifestError]) -> ManifestError:
        """One error for several problems: ``str`` is one line per problem."""
        first = problems[0]
        if len(problems) == 1:
            return first
        combined = cls(first.file, first.path, first.problem)
        combined.problems = tuple(problems)
        combined.args = ("\n".join(str(p) for p in problems),)
        return combined


class SourceError(OrchestratorError):
    """A source cannot be listed or read; the message names the source."""


class NoticeError(SourceError):
    """A queue message that is no store's notification (not JSON, an unknown shape): a poison message,
    logged and left to the queue's redrive policy."""


class LedgerError(OrchestratorError):
    """The ledger cannot be used."""


class UnknownObjectError(LedgerError):
    """The ledger has no row for this URL (objects get one when first submitted)."""


class OutputError(OrchestratorError):
    """A file the orchestrator writes for other tools (metrics, an export) cannot be written."""


class SchemaError(OrchestratorError):
    """A describe output or schema file that cannot be understood."""


class FooterError(OrchestratorError):
    """The object is not a readable parquet file."""


class LockHeldError(OrchestratorError):
    """Another run holds the ledger lock."""

    def __init__(self, lock_path: str, holder: str, *, waited_s: float = 0.0) -> None:
        self.lock_path = lock_path
        self.holder = holder
        self.waited_s = waited_s
        if waited_s > 0:
            advice = (f"it still held the ledger after {waited_s:g} s of waiting; try again when it ends, "
                      "or wait longer (--wait-lock SECONDS)")
        else:
            advice = "wait for it, or pass --wait-lock SECONDS"
        super().__init__(f"{lock_path}: another run ({holder}) is using this ledger; {advice}")


class TargetError(OrchestratorError):
    """The import API refused a call or could not be reached."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None) -> None:
        self.code = code
        self.http_status = http_status
        self.message = message
        super().__init__(message)


MAX_RETRY_AFTER_S = 300.0  # the longest pause a server's Retry-After gets: a longer one waits this long


class TransientError(TargetError):
    """Retry with backoff; ``retry_after`` is the server's hint in seconds, if any (at most
    :data:`MAX_RETRY_AFTER_S`)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after


class AmbiguousError(TransientError):
    """The request may have reached the server and created a job (lost reply, 5xx, timeout)."""


class ProtocolError(TransientError):
    """A reply that breaks the API's protocol: a field of the wrong type, size or range (``field``
    names it, as ``data.details[0].importedRows``). Handled like a reply that cannot be read: retried,
    then left for the next run; nothing of it is stored."""

    def __init__(self, field: str, problem: str, *, http_status: int | None = None) -> None:
        super().__init__(f"protocol error: {field} {problem}", http_status=http_status)
        self.field = field


class AmbiguousProtocolError(ProtocolError, AmbiguousError):
    """The reply to a call that may have made a job broke the protocol: look for the job before
    retrying, as after any lost reply."""


class UnreachableError(TransientError):
    """The connection could not be made (no such host, refused, timed out connecting): nothing was sent."""


class ServerFullError(TransientError):
    """The server refused a new job because it holds all it takes (Zilliz 47039/47055, Milvus 2100
    "the number of jobs has reached the limit"): no job was made; room comes when a job ends."""


class PermanentError(TargetError):
    """The server refused this object; retrying the same call will not help."""


class JobNotFoundError(PermanentError):
    """The server does not know this job id: it forgot it (Milvus, after about 3 hours) or never made it."""


class JobTerminalError(PermanentError):
    """A two-phase job already ended, so it can no longer be committed or aborted.

    ``committed`` says which end: True when its rows are (or are becoming) visible (``Committing``,
    ``Completed``), False when they never will be (``Failed``, aborted included).
    """

    def __init__(self, message: str, *, committed: bool, code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.committed = committed


class FatalTargetError(TargetError):
    """The server refused the run as a whole (credentials, cluster): stop submitting."""
