"""The ``orchestrator`` command's entry point (and ``python -m orchestrator``'s): what runs before the
command line's modules are loaded.

Loading them (click, the API, the ledger, the HTTP client) takes about half a second; a Ctrl-C meanwhile
would end in a ``KeyboardInterrupt`` traceback from inside some import. Until they are loaded, a Ctrl-C
prints one line and exits 130; from then on the command handles signals itself (``cli.exits.signals``).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_CTRL_C = 130


def _while_loading(_signum: int, _frame: FrameType | None) -> None:
    sys.stderr.write("stopped by Ctrl-C while starting: nothing was done\n")
    raise SystemExit(EXIT_CTRL_C)


def main() -> None:
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # a Ctrl-C ignored when we started (a background job) stays so
        signal.signal(signal.SIGINT, _while_loading)
    from .main import main as command_line

    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, previous)
    command_line()
