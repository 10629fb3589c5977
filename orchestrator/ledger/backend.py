"""What a ledger backend implements, and nothing else: the two small protocols every database meets.

The ledger's SQL is written once, in what SQLite and PostgreSQL both speak (``?`` and ``:name``
placeholders, ``RETURNING``, ``ON CONFLICT``); a :class:`Backend` holds what differs: the connection,
how a transaction begins, placeholders and column types, the catalog, whether the file can be replaced
under the run, and how its driver's errors become a :class:`~orchestrator.errors.LedgerError` (in one
place, :meth:`Backend.errors`). A backend module (``sqlite.py``, ``postgres.py``) is a :class:`Kind`:
how to open, lock, name and find a ledger at its kind of location. ``store.open_ledger`` picks the
module by the location's type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Rows(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Backend(Protocol):
    """One open connection to a ledger. SQL reaches :meth:`execute` with ``?`` and ``:name``
    placeholders and SQLite's column types; a backend translates what it must."""

    name: str  # how messages name the ledger (a path, or a URL without its password)
    kind: str  # "SQLite file", "PostgreSQL schema"
    for_update: str  # appended to a SELECT whose rows the transaction then writes
    read_only: bool  # opened to read alone: the schema is neither created nor migrated

    def errors(self) -> AbstractContextManager[None]:
        """The one place a driver error becomes a :class:`LedgerError` naming the ledger."""
        ...

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Rows: ...
    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]: ...
    def executemany(self, sql: str, rows: Iterator[Sequence[Any]]) -> None: ...
    def begin(self, *, durable: bool, exclusive: bool = False) -> None: ...
    def in_transaction(self) -> bool: ...
    def tables(self) -> set[str]: ...
    def columns(self, table: str) -> set[str]: ...
    def ddl(self, statement: str) -> str: ...
    def floor(self, expression: str) -> str: ...
    def after_copy(self) -> None: ...
    def schema_objects(self) -> set[tuple[str, str]]: ...
    def check_same(self) -> None: ...
    def close(self) -> None: ...


# The run lock's name, and how to tell whether the run a run record names still holds its lock.
Held = tuple[str, Callable[[str], bool]]


class Kind(Protocol):
    """A backend module: what it declares once about its kind of location (a path, a URL)."""

    def open_backend(self, where: Any, *, read_only: bool, busy_timeout_s: float) -> Backend:
        """An open connection; ``read_only`` reads without writing where the backend can."""
        ...

    def hold(self, where: Any, *, wait_s: float) -> AbstractContextManager[Held]:
        """The one-run lock of the ledger at ``where``, for as long as the run lasts."""
        ...

    def display(self, where: Any) -> str:
        """How messages name the ledger at ``where`` (never with a password)."""
        ...

    def missing(self, where: Any) -> bool:
        """Whether there is surely no ledger at ``where`` yet (a database is asked when opened)."""
        ...

    def same(self, where: Any, other: Any) -> bool:
        """Whether two locations reach one ledger."""
        ...
