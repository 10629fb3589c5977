"""Prometheus text exposition for node_exporter's textfile collector: rendering (pure) and an atomic
write (temp file in the same folder, fsync, rename), so the collector never reads half a file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError


@dataclass(frozen=True, slots=True)
class Metric:
    """One gauge and its samples, each a set of labels and a value."""

    name: str
    help: str
    samples: list[tuple[Mapping[str, str], float]]


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for m in metrics:
        lines += [f"# HELP {m.name} {_escape_help(m.help)}", f"# TYPE {m.name} gauge"]
        for labels, value in m.samples:
            inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{m.name}{{{inner}}} {_number(value)}" if inner else f"{m.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename; raises :class:`OutputError`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{path}: cannot write the metrics file ({exc.strerror or exc})") from exc


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
