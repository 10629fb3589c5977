"""What an operator changes in a ledger: ``retry`` re-arms objects; ``copy_ledger`` moves a ledger
between SQLite and PostgreSQL."""

from __future__ import annotations

import fnmatch
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import env, extras, pgurl
from ..config.document import ledger_file_problem
from ..config.manifest import Manifest
from ..errors import ManifestError
from ..jobs.evidence import Judgement, ServerClock, Verdict
from ..jobs.reconcile import settle
from ..ledger import copy
from ..ledger.factory import Location
from ..ledger.store import Ledger
from ..models import ObjectState
from ..run.pipeline import make_reconciler
from ..run.policy import submit_policy
from ..run.wiring import (
    TargetFactory,
    make_http_client,
    make_reader,
    make_target,
    one_run,
    redacting,
)
from ..sources.registry import make_source
from ..targets.pacing import RateLimiter
from .records import url_forms


def ledger_location(text: str, environ: Mapping[str, str] | None = None) -> Location:
    """A SQLite path or a ``postgresql://`` URL (``schema=`` required; a password only as ``${VAR}``),
    as ``ledger copy`` takes them. Raises :class:`ManifestError` naming the argument."""
    variables = os.environ if environ is None else environ
    unsupported = env.UNSUPPORTED_REF.search(text)
    if unsupported is not None:
        raise ManifestError("", "ledger URL", env.unsupported_reference(unsupported.group(1)))
    if not pgurl.is_postgres(text):
        problem = ledger_file_problem(Path(text))
        if problem is not None:
            raise ManifestError("", "ledger", problem)
        return Path(text)

    def unset(name: str) -> str:
        raise ManifestError("", "ledger URL", f"environment variable {name} is not set")

    try:
        location = pgurl.parse(text, substitute=lambda part: env.substitute(part, variables, unset=unset),
                               default_schema=None)
    except ValueError as exc:
        raise ManifestError("", "ledger URL", str(exc)) from None
    why = extras.missing("postgres", needed_by="a PostgreSQL ledger")
    if why is not None:
        raise ManifestError("", "ledger URL", why)
    return location


def copy_ledger(source: Location, destination: Location, *, wait_lock_s: float = 0.0) -> dict[str, int]:
    """Copy a whole ledger (objects, events, job progress, run bookkeeping) into an empty one of either
    kind, in one transaction, holding both ledgers' run locks; returns the rows copied per table."""
    return copy.copy_ledger(source, destination, wait_lock_s=wait_lock_s)


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
