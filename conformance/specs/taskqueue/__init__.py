"""The `taskqueue` spec's suite (openapi/taskqueue.requirements.yaml): a strictly sequential task
server, watched from outside while it works through one batch of tasks, through a protocol
description (conformance/_protocol.py): ours by default, openapi/taskqueue.protocol.yaml, or the
student's with --protocol FILE, since the assignment leaves the protocol open."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import option, positive
from conformance._protocol import ProtocolOptions

# The abstract operations the suite performs, and the values each must give.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "submit": ("id",), "status": ("status",), "result": ("result",)}


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """The task server's options, --protocol among them (shared with the other specs whose
    protocol is open: one flag, one declaration)."""

    PROTOCOL_SPEC = "taskqueue"
    PROTOCOL_OPERATIONS = OPERATIONS

    time_scale: float = option(
        1.0, parse=positive, metavar="F",
        help="for a task server started with its delays multiplied by F (our reference's "
             "--time-scale): expect them so (%(default)s: the real delays)")
