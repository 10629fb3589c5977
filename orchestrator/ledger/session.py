"""One open ledger, shared by the run's threads: its backend, the connection lock, transactions and the
group commit. Every read and write of the ledger's modules goes through :meth:`Session.read`,
:meth:`Session.tx` or :meth:`Session.durably`, which also turn a driver's error into a
:class:`~orchestrator.errors.LedgerError` naming the ledger (the backend's :meth:`~.Backend.errors`).

``owner`` is the identity of the target this process imports into: new rows are recorded under it,
and a ledger opened for one target claims, polls and judges only that target's rows. ``sources`` names
each source number of the manifest by its stable URL.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from ..models import ObjectState
from . import schema
from .backend import Backend

T = TypeVar("T")


class Session:
    """Thread-safe: every operation takes the connection lock for one short transaction."""

    def __init__(self, db: Backend, *, clock: Callable[[], float], owner: str = "",
                 sources: Sequence[str] = ()) -> None:
        self.db = db
        self.name = db.name
        self.owner = owner
        self.sources = tuple(sources)
        self.clock = clock
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Op[Any]] = []

    @contextlib.contextmanager
    def read(self) -> Iterator[Backend]:
        """The connection, under the lock, for reads (and writes committed by the caller's SQL)."""
        with self._lock, self.db.errors():
            yield self.db

    @contextlib.contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[Backend]:
        """A transaction under the connection lock, committed on leaving; rolled back on any exception.

        ``durable`` commits so as to survive a power cut (SQLite ``synchronous=FULL``, PostgreSQL
        ``synchronous_commit=on``); otherwise so as to survive a crash of the process (``NORMAL``;
        ``off``: the server keeps the commit, a crash of the server may lose it), all a re-derivable
        row needs."""
        with self._lock, self.db.errors():
            self.db.begin(durable=durable)
            try:
                yield self.db
            except BaseException:
                schema.rollback(self.db)  # SQLite rolls back by itself on a full disk or an I/O error
                raise
            try:
                self.db.execute("COMMIT")
            except Exception:  # a full disk, say: leave no transaction open
                schema.rollback(self.db)
                raise

    def durably(self, body: Callable[[], T]) -> T:
        """Run ``body`` in a transaction committed with ``synchronous=FULL`` before returning: a group
        commit. Transitions that arrive while another thread holds the connection queue up, and the
        next thread to get it commits them all with one fsync; each body runs in a savepoint of its
        own, so one that raises (an impossible move) is undone alone. Nobody returns before the
        commit that holds its change, so a ``submitting`` row is on disk before its create call and
        a job id is on disk before it is reported."""
        op: _Op[T] = _Op(body)
        with self._queue_lock:
            self._queue.append(op)
        with self.db.errors():
            with self._lock:
                if not op.done:
                    with self._queue_lock:
                        batch, self._queue = self._queue, []
                    self._commit(batch)
            if op.error is not None:
                raise op.error
        return op.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Op[Any]]) -> None:
        try:
            self.db.begin(durable=True)
            try:
                for op in batch:
                    self.db.execute("SAVEPOINT op")
                    try:
                        op.result = op.body()
                    except Exception as exc:
                        self.db.execute("ROLLBACK TO op")
                        op.error = exc
                    self.db.execute("RELEASE op")
                self.db.execute("COMMIT")
            except BaseException:
                schema.rollback(self.db)
                raise
        except Exception as exc:  # the commit itself failed: nothing in the batch happened
            for op in batch:
                op.error = exc
        finally:
            for op in batch:
                op.done = True

    def event(self, object_id: int, at: float, state: ObjectState, job_id: str | None,
              detail: str | None) -> None:
        """One line of a row's history, inside the caller's transaction."""
        self.db.execute("INSERT INTO events (object_id, at, state, job_id, detail) VALUES (?,?,?,?,?)",
                        (object_id, at, state.value, job_id, detail))

    def source_url(self, index: int) -> str:
        """The URL of the manifest's source number ``index``, as rows name it."""
        return self.sources[index] if 0 <= index < len(self.sources) else f"sources[{index}]"

    def check_same_file(self) -> None:
        """Raise :class:`LedgerError` when the ledger file was deleted or replaced since it was opened
        (SQLite; a PostgreSQL ledger has no file to replace: nothing to check)."""
        self.db.check_same()

    def close(self) -> None:
        with self._lock, self.db.errors():
            self.db.close()


class _Op(Generic[T]):
    """One queued transition of a group commit."""

    __slots__ = ("body", "done", "error", "result")

    def __init__(self, body: Callable[[], T]) -> None:
        self.body = body
        self.done = False
        self.error: BaseException | None = None
        self.result: T | None = None
