"""The library surface: ``validate``, ``ls``, ``plan``, ``check``, ``run``, ``status``, ``health``,
``show``, ``export``, ``write_report``, ``write_metrics`` (a file, a Pushgateway), ``retry``,
``copy_ledger``; one module per concern, each command wiring the parts together.

Everything a command does happens here, so that it can be called from Python as well as from the CLI;
the CLI only parses, calls one of these, prints and maps errors to exit codes. The types the commands
take and return are named here too (``RunOptions``, the reports); anything else in the package may
change between releases.
"""

from __future__ import annotations

from ..preflight.checks import Inspection
from ..run.observer import RunObserver
from ..run.state import RunOptions, RunReport
from .inspect import CheckReport, LsEntry, LsReport, PlanReport, check, ls, plan, validate
from .operate import RetryReport, copy_ledger, ledger_location, retry
from .records import (
    EXPORT_FORMATS,
    ObjectHistory,
    StatusReport,
    export,
    health,
    report,
    show,
    status,
    write_report,
)
from .running import check_metrics_file, run, write_metrics

__all__ = [
    "EXPORT_FORMATS", "CheckReport", "Inspection", "LsEntry", "LsReport", "ObjectHistory", "PlanReport",
    "RetryReport", "RunObserver", "RunOptions", "RunReport", "StatusReport", "check", "check_metrics_file",
    "copy_ledger", "export", "health", "ledger_location", "ls", "plan", "report", "retry", "run", "show",
    "status", "validate", "write_metrics", "write_report",
]
