"""What an operator changes in a ledger: ``retry`` re-arms objects; ``copy_ledger`` moves a ledger
between SQLite and PostgreSQL."""

from __future__ import annotations

import fnmatch
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import extras, pgurl
from ..config.manifest import UNSUPPORTED_REF, Manifest, ledger_file_problem, unsupported_reference
from ..config.pgurl import PostgresLedger
from ..errors import LedgerError, ManifestError
from ..jobs.evidence import Judgement, ServerClock, Verdict
from ..jobs.reconcile import settle
from ..ledger.store import TABLES, Ledger
from ..models import ObjectState
from ..run.pipeline import make_reconciler
from ..run.policy import submit_policy
from ..run.wiring import (
    TargetFactory,
    hold_ledger,
    make_http_client,
    make_reader,
    make_target,
    one_run,
    redacting,
)
from ..sources.registry import make_source
from ..targets.pacing import RateLimiter
from .records import url_forms


def ledger_location(text: str, environ: Mapping[str, str] | None = None) -> Path | PostgresLedger:
    """A SQLite path or a ``postgresql://`` URL (``schema=`` required; a password only as ``${VAR}``),
    as ``ledger copy`` takes them. Raises :class:`ManifestError` naming the argument."""
    env = os.environ if environ is None else environ
    unsupported = UNSUPPORTED_REF.search(text)
    if unsupported is not None:
        raise ManifestError("", "ledger URL", unsupported_reference(unsupported.group(1)))
    if not pgurl.is_postgres(text):
        problem = ledger_file_problem(Path(text))
        if problem is not None:
            raise ManifestError("", "ledger", problem)
        return Path(text)

    def substitute(part: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(1) not in env:
                raise ManifestError("", "ledger URL", f"environment variable {match.group(1)} is not set")
            return env[match.group(1)]
        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", one, part)

    try:
        location = pgurl.parse(text, substitute=substitute, default_schema=None)
    except ValueError as exc:
        raise ManifestError("", "ledger URL", str(exc)) from None
    why = extras.missing("postgres", needed_by="a PostgreSQL ledger")
    if why is not None:
        raise ManifestError("", "ledger URL", why)
    return location


def copy_ledger(source: Path | PostgresLedger, destination: Path | PostgresLedger, *,
                wait_lock_s: float = 0.0) -> dict[str, int]:
    """Copy a whole ledger (objects, events, job progress, run bookkeeping) into an empty one of either
    kind, in one transaction, holding both ledgers' run locks; returns the rows copied per table."""
    if isinstance(source, Path) and not source.exists():
        raise LedgerError(f"{source}: no such ledger")
    same = source.resolve() == destination.resolve() if isinstance(source, Path) and \
        isinstance(destination, Path) else source == destination
    if same:
        name = str(destination) if isinstance(destination, Path) else destination.display
        raise LedgerError(f"{name}: the source and the destination are the same ledger")
    with hold_ledger(source, wait_s=wait_lock_s), hold_ledger(destination, wait_s=wait_lock_s), \
            Ledger(source, upgrade=False) as src, Ledger(destination) as dst:
        if not dst.is_empty():
            raise LedgerError(f"{dst.name}: the destination ledger is not empty; copy into a new file or "
                              "schema (nothing was written)")
        return dst.load({table: src.dump(table) for table in TABLES})


@dataclass(frozen=True, slots=True)
class RetryReport:
    """The URLs re-armed, and the URLs or globs looked for (empty: every failed object); with
    ``uncertain``, the objects whose job the list proved (URL, job id), and those not re-armed because
    their job may exist (URL, why)."""

    rearmed: list[str]
    looked_for: list[str]
    adopted: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def retry(manifest: Manifest, *, url_glob: str | None = None, exact: str | None = None,
          uncertain: bool = False, force: bool = False, wait_lock_s: float = 0.0,
          target_factory: TargetFactory = make_target) -> RetryReport:
    """Re-arm failed and invalid (or uncertain) objects so that the next run submits them: all of them,
    those whose URL matches ``url_glob`` (``*``, ``?``, ``[...]``), or the one ``exact`` names (its URL
    as is, glob characters included). Both may be paths, as :func:`url_forms` reads them.

    An ``uncertain`` object is re-armed only once the server's job list proves it has no job: a job
    that proves to be its is adopted instead, and one whose job may exist is left as it is, with the
    reason (``force`` re-arms them all the same: each may then be imported twice)."""
    if url_glob is not None and exact is not None:
        raise ManifestError("", "--url, --exact", "give one or the other")
    match: Callable[[str], bool] | None = None
    looked: list[str] = []
    if exact is not None:
        looked = url_forms(manifest, exact)
        wanted = set(looked)
        match = wanted.__contains__
    elif url_glob is not None:
        looked = url_forms(manifest, url_glob, glob=True)
        match = lambda url: any(fnmatch.fnmatchcase(url, g) for g in looked)  # noqa: E731
    with one_run(manifest, wait_lock_s=wait_lock_s) as ledger:
        if uncertain and not force:
            return _retry_uncertain(manifest, ledger, match, looked, target_factory)
        return RetryReport(ledger.rearm(match=match, uncertain=uncertain), looked)


def _retry_uncertain(manifest: Manifest, ledger: Ledger, match: Callable[[str], bool] | None,
                     looked: list[str], target_factory: TargetFactory) -> RetryReport:
    """The job list decides each uncertain object first: adopt, release (re-armed), or refuse."""
    rows = [r for r in ledger.records([ObjectState.UNCERTAIN], own=True) if match is None or match(r.url)]
    refused = [(r.url, f"{r.error or 'uncertain'}; its job {r.job_id} may have imported it")
               for r in rows if r.job_id is not None]  # a recorded job the server forgot: nothing can tell
    decided: dict[int, Judgement] = {}
    server_clock = ServerClock()
    stop = threading.Event()
    limiter = RateLimiter(manifest.settings.requests_per_second)
    with redacting(manifest) as redact, make_http_client(manifest, limiter, server_clock) as client:
        target = target_factory(manifest, client, make_reader(manifest, make_source))
        reconciler = make_reconciler(target, ledger, submit_policy(manifest), server_clock, stop=stop,
                                     sleep=stop.wait)
        settle(reconciler, ledger, redact, [r for r in rows if r.job_id is None], adopted=[],
               detail="adopted by retry --uncertain", decided=decided)
    adopted, rearmed = [], []
    for verdict in decided.values():
        if verdict.verdict is Verdict.ADOPT and verdict.job is not None:
            adopted.append((verdict.record.url, verdict.job.job_id))
        elif verdict.verdict is Verdict.RELEASE:
            rearmed.append(verdict.record.url)
        else:
            refused.append((verdict.record.url, verdict.why))
    return RetryReport(rearmed, looked, adopted, sorted(refused))
