"""The `pipeline` spec's suite (openapi/pipeline.requirements.yaml): four services (client,
receiver, processor, writer), each checked on its own, then together through the client; the
receiver, the processor and the writer's tables through a protocol description
(conformance/_protocol.py): ours by default, openapi/pipeline.protocol.yaml, or the student's with
--protocol FILE, since the assignment leaves every format but the client's URL open."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import OptionError, existing_folder, option
from conformance._protocol import ProtocolOptions
from conformance._target import TargetError, host_port

# The services, by role: each operation of a description names the one that answers it.
ROLES = ("client", "receiver", "processor", "writer")
# The abstract operations the suite performs; none must give a value (the receiver's answer may
# name the id, and is checked where the description says it does).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "process": (), "receive": (), "records": (), "received": ()}


def _service(word: str) -> tuple[str, str]:
    role, sep, url = word.partition("=")
    if not sep or not role:
        raise OptionError(f"{word!r} is not ROLE=URL")
    if role not in ROLES[1:]:  # the client is the run's base URL
        raise OptionError(f"{role!r} is no service of the pipeline's: one of "
                          f"{', '.join(ROLES[1:])} (the client is at --base-url)")
    try:
        host_port(url)
    except TargetError as exc:
        raise OptionError(f"{role}: {exc}") from None
    return role, url


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """The pipeline's options: where its other services answer, where its tables are, and
    --protocol (shared with the other specs whose protocol is open: one flag, one declaration)."""

    PROTOCOL_SPEC = "pipeline"
    PROTOCOL_OPERATIONS = OPERATIONS
    PROTOCOL_SERVICES = ROLES

    services: dict[str, str] = option(
        {}, parse=_service, metavar="ROLE=URL", flag="--service", outside=lambda _: True,
        help="where one of the services answers, e.g. writer=http://127.0.0.1:5003/ (default: "
             "the base URL's host on the role's port: receiver 5001, processor 5002, writer "
             "5003)")
    output_dir: str | None = option(
        None, check=existing_folder, metavar="DIR", written=True,
        help="for a writer that does not serve its tables: the folder it writes them in "
             "(read only)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.protocol is None or self.output_dir is not None:
            return
        # A table read only from a file cannot be read without the folder: a usage error now,
        # not a failure found half-way through a run.
        files = [f"{name} ({op['file']})" for name, op in self.described().operations.items()
                 if "file" in op and "path" not in op]
        if files:
            raise OptionError(f"{self.protocol} reads {', '.join(files)} from a file: give "
                              f"--output-dir DIR, the folder the writer writes in")
