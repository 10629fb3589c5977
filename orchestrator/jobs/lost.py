"""Lost replies: this run's create calls whose reply never came and whose job the list did not show
yet, looked at again while the run goes on and at its end."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

from ..ledger.store import Ledger
from ..models import LedgerRecord, ObjectState
from ..redact import Redactor
from .evidence import Judgement, Verdict
from .reconcile import Reconciler, settle
from .window import Window

log = logging.getLogger("orchestrator")


class LostReplies:
    """This run's create calls whose reply was lost and whose job the list did not show yet: their
    rows stay ``submitting``, and each keeps its slot of the job window (the job may run).

    :meth:`settle` looks at them again while the run goes on (from the drain's loop) once the job list
    has had ``settings.job_list_lag_s`` to show the oldest, and at the run's end for all of them: one
    list call serves every call waiting. A call whose job is adopted keeps its slot (its job's end
    frees it, as any job's); one proven to have none, or held ``uncertain``, frees it."""

    def __init__(self, reconciler: Reconciler, ledger: Ledger, redact: Redactor, window: Window) -> None:
        self._reconciler = reconciler
        self._ledger = ledger
        self._redact = redact
        self._window = window
        self._calls: list[list[int]] = []
        self.counts: Counter[str] = Counter()  # how the calls settled: adopted, released, uncertain
        self._lock = threading.Lock()
        self._settling = threading.Lock()

    def add(self, rows: list[int]) -> None:
        """A lost reply's call: its rows, and the window slot its caller took (now held here)."""
        self._window.started()
        with self._lock:
            self._calls.append(rows)

    def _rows(self) -> tuple[list[list[int]], list[LedgerRecord]]:
        """The calls waiting, and their rows still ``submitting``."""
        with self._lock:
            calls = list(self._calls)
        found = self._ledger.rows([row for call in calls for row in call]) if calls else []
        return calls, [r for r in found if r.state is ObjectState.SUBMITTING]

    def settle(self, *, wait: bool, on_adopted: Callable[[str, int], None] | None = None,
               pause: Callable[[float], object] | None = None) -> None:
        """Judge the calls once the oldest is due; with ``wait``, once every one is, pausing till then
        (outside the lock: the drain polls on meanwhile)."""
        waiting, rows = self._rows()
        if wait and pause is not None and (delay := self._reconciler.due_in(rows, every=True)):
            log.info("waiting %.0f s for the job list to show the job(s) of %d lost repl%s", delay,
                     len(waiting), "y" if len(waiting) == 1 else "ies", extra={"event": "waiting"})
            pause(delay)
        with self._settling:
            calls, rows = self._rows()
            if not calls or (not wait and self._reconciler.due_in(rows, every=False) > 0):
                return
            records = {r.id: r for r in rows}
            decided: dict[int, Judgement] = {}
            counts = settle(self._reconciler, self._ledger, self._redact, rows, adopted=[],
                            detail="adopted after a lost reply", decided=decided)
            with self._lock:
                self.counts.update(counts)
                for call in calls:
                    judged = decided.get(call[0]) if call[0] in records else None
                    if judged is not None and judged.verdict is Verdict.WAIT:
                        continue
                    self._calls.remove(call)  # settled (or moved on by another path)
                    if judged is not None and judged.verdict is Verdict.ADOPT and judged.job is not None:
                        if on_adopted is not None:
                            on_adopted(judged.job.job_id, len(call))
                    else:
                        self._window.dropped()
