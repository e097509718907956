"""The `taskqueue` spec's suite (openapi/taskqueue.requirements.yaml): a strictly sequential task
server, watched from outside while it works through one batch of tasks."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import SpecOptions, option, positive


@dataclass(frozen=True)
class Options(SpecOptions):
    """The task server's options."""

    time_scale: float = option(
        1.0, parse=positive, metavar="F",
        help="for a task server started with its delays multiplied by F (our reference's "
             "--time-scale): expect them so (%(default)s: the real delays)")
