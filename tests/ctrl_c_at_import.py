"""Run the orchestrator's command line (``python -m tests.ctrl_c_at_import ARGS...``) with a Ctrl-C
pressed while Python imports click, the first of the command line's libraries: where a user's Ctrl-C
lands in the first half second of a run."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import runpy
import signal
import sys
from collections.abc import Sequence
from types import ModuleType


class CtrlCOnImport(importlib.abc.MetaPathFinder):
    """Sends this process a SIGINT when ``click`` is first looked for, then lets the import go on (the
    signal's handler runs a few bytecodes later, inside the import)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "click":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, CtrlCOnImport())
    runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
