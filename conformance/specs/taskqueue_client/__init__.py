"""The `taskqueue-client` spec's suite (openapi/taskqueue-client.requirements.yaml): a client of
the task server, run through a program description (conformance/_protocol.py: ours by default,
openapi/taskqueue-client.protocol.yaml, or the student's with --protocol FILE, since the
assignment only recommends command-line parameters), and judged against our reference server
run in-process, or through the student's own server (--server-command or --server-url, spoken
to as --server-protocol describes it)."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._client_run import OwnServerOptions
from conformance._options import OptionError, option
from conformance._protocol import ProtocolOptions

# The client's abstract operations, each one command line; none must name where its answer is
# (without a locator a value is looked for anywhere in stdout).
OPERATIONS: dict[str, tuple[str, ...]] = {"task": (), "status": (), "result": (), "wait": ()}


def server_protocol_file(text: str) -> str:
    """A `taskqueue` description (of the student's server) that loads and validates, as an
    absolute path (a usage error with the reason otherwise)."""
    from pathlib import Path

    from conformance import _protocol
    from conformance.specs.taskqueue import OPERATIONS as SERVER_OPERATIONS

    try:
        _protocol.load(text, spec="taskqueue", operations=SERVER_OPERATIONS)
    except _protocol.ProtocolError as exc:
        raise OptionError(str(exc)) from exc
    return str(Path(text).resolve())


@dataclass(frozen=True)
class Options(OwnServerOptions, ProtocolOptions):
    """The task client's options: where it expects its server, its command line's description
    (--protocol), and the student's own server with its description."""

    PROTOCOL_SPEC = "taskqueue-client"
    PROTOCOL_OPERATIONS = OPERATIONS

    server_protocol: str | None = option(
        None, parse=server_protocol_file, metavar="FILE",
        help="with --server-command or --server-url: a `taskqueue` description of that "
             "server's protocol, through which the suite prepares tasks and reads what the "
             "client did (default: ours, openapi/taskqueue.protocol.yaml)")

    def __post_init__(self) -> None:
        OwnServerOptions.__post_init__(self)
        self.check_protocol()
        if self.server_protocol is not None and not self.own_server:
            raise OptionError("--server-protocol describes the student's own server: give it "
                              "with --server-command or --server-url")
