"""Options and arguments several commands share: the manifest, ``--wait-lock``, durations."""

from __future__ import annotations

from typing import Any

import click

from ..config import discovery
from .logs import stamp


class Duration(click.ParamType[float]):
    """A duration: seconds (``90``), or with units, ``90s``, ``45m``, ``2h``, ``1h30m``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float | int):
            return float(value)
        seconds = discovery.seconds(str(value))
        if seconds is None:
            self.fail(f"{value!r} is not a duration: give seconds (3000) or units, as 50m, 2h or 1h30m",
                      param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r}: a deadline must be longer than 0 s", param, ctx)
        return seconds


wait_lock_option = click.option(
    "--wait-lock", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
    help="Wait up to SECONDS for another run on the same ledger to end (0: exit 75 at once).")
manifest_arg = click.argument("manifest", type=click.Path(dir_okay=False), callback=stamp)
