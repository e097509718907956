"""The `taskqueue` spec's suite (openapi/taskqueue.requirements.yaml): a strictly sequential task
server, watched from outside while it works through one batch of tasks, through a protocol
description (conformance/_protocol.py): ours by default, openapi/taskqueue.protocol.yaml, or the
student's with --protocol FILE, since the assignment leaves the protocol open."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import OptionError, SpecOptions, option, positive

# The abstract operations the suite performs, and the values each must give.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "submit": ("id",), "status": ("status",), "result": ("result",)}


def protocol_file(text: str) -> str:
    """A description that loads and validates for this spec, as an absolute path (a usage error
    with the schema's message otherwise)."""
    from pathlib import Path

    from conformance import _protocol  # only when the flag is given: it imports jsonschema

    try:
        _protocol.load(text, spec="taskqueue", operations=OPERATIONS)
    except _protocol.ProtocolError as exc:
        raise OptionError(str(exc)) from exc
    return str(Path(text).resolve())


@dataclass(frozen=True)
class Options(SpecOptions):
    """The task server's options."""

    time_scale: float = option(
        1.0, parse=positive, metavar="F",
        help="for a task server started with its delays multiplied by F (our reference's "
             "--time-scale): expect them so (%(default)s: the real delays)")
    protocol: str | None = option(
        None, parse=protocol_file, metavar="FILE",
        help="a description of the server's protocol (the assignment leaves it open); "
             "`conformance protocol taskqueue` prints ours, the default, to start from")
