"""``run``, and its metrics for Prometheus (a file for node_exporter's textfile collector, a
Pushgateway)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..config.manifest import Manifest
from ..errors import ManifestError, OutputError
from ..report import metrics
from ..report.run_metrics import final_metrics
from ..run import pipeline
from ..run.observer import RunObserver
from ..run.state import RunOptions, RunReport
from ..run.wiring import QueueFactory, SourceFactory, TargetFactory, make_target
from ..sources.registry import make_queue, make_source


def run(manifest: Manifest, options: RunOptions | None = None, *, stop: threading.Event | None = None,
        observer: RunObserver | None = None, source_factory: SourceFactory = make_source,
        target_factory: TargetFactory = make_target, sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.time, queue_factory: QueueFactory = make_queue,
        on_round: Callable[[RunReport], None] | None = None) -> RunReport:
    """Refresh known jobs, reconcile interrupted calls, then list, plan, submit and record; with
    ``options.wait``, keep submitting as jobs end until every planned object's job has ended.

    ``observer`` (a progress display, :class:`~orchestrator.run.observer.RunObserver`) sees every
    planned object, every submission's outcome, the job polls (phase ``refreshing`` or ``waiting``)
    and the end of the listing (totals are known from then on).

    A source whose ``discovery`` is ``events`` reads its queue (made by ``queue_factory``) until it is
    empty; with ``options.follow`` the run keeps reading every such queue until ``stop`` is set (as
    ``options.wait``: its jobs are polled as they run), calling ``on_round`` with the report so far
    after each round (the CLI writes its metrics then).

    Every run that starts ends with its report: at ``options.deadline_s`` it stops as on a signal
    (``expired``: exit 124), and an error that ends it midway (the ledger's database lost, a disk
    full) is its ``fatal`` (exit 1), logged once. Only a run that could not start raises: another
    run holds the ledger (:class:`LockHeldError`), or the manifest is wrong (:class:`ManifestError`).
    """
    return pipeline.run(manifest, options, stop=stop, source_factory=source_factory,
                        target_factory=target_factory, sleep=sleep, observer=observer, clock=clock,
                        queue_factory=queue_factory, on_round=on_round)


def check_metrics_file(path: Path) -> None:
    """Before a run: refuse a ``--metrics-file`` that names anything but a regular file or a new name
    (a folder, a FIFO, a device such as ``/dev/null``, a symlink loop), as a usage error."""
    try:
        metrics.target(path)
    except OutputError as exc:
        raise ManifestError("", "--metrics-file", str(exc)) from None


def write_metrics(manifest: Manifest, report: RunReport, *, seconds: float, file: Path | None = None,
                  push_url: str | None = None, clock: Callable[[], float] = time.time) -> list[OutputError]:
    """The run's metrics, computed once: written for node_exporter's textfile collector to ``file``
    (atomically: temp + rename) and pushed to the Pushgateway at ``push_url`` (grouped by job and
    manifest file name). Each is tried; returns what failed."""
    if file is None and push_url is None:
        return []
    found = final_metrics(manifest, report, seconds=seconds, clock=clock)
    errors: list[OutputError] = []
    if file is not None:
        try:
            metrics.write_atomic(file, metrics.render(found))
        except OutputError as exc:
            errors.append(exc)
    if push_url is not None:
        try:
            metrics.push(push_url, found, grouping={"manifest": manifest.path.name})
        except OutputError as exc:
            errors.append(exc)
    return errors
