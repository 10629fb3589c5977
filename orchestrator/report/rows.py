"""A ledger row as plain values, for ``export`` and the commands' ``--json``: times in ISO 8601 (UTC),
and cells a terminal or a spreadsheet cannot misread."""

from __future__ import annotations

from datetime import UTC, datetime

from ..models import LedgerRecord
from ..terminal import printable


def csv_cell(value: object) -> object:
    r"""A CSV cell that a terminal or a spreadsheet cannot misread: control characters escaped as the text
    commands escape them (``\x1b``, ``\r``, ``\u202e``), and text that a spreadsheet would run as a
    formula (starting with ``=``, ``+``, ``-`` or ``@``) prefixed with ``'``, as OWASP advises. Numbers
    stay numbers."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return f"'{text}" if text.startswith(("=", "+", "-", "@")) else text


def record_row(record: LedgerRecord) -> dict[str, object]:
    """A ledger row as plain values: its fields, the state's name, the time in ISO 8601."""
    return {**record._asdict(), "state": record.state.value, "updated_at": iso_time(record.updated_at)}


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")
