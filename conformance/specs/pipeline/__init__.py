"""The `pipeline` spec's suite (openapi/pipeline.requirements.yaml): four services (client,
receiver, processor, writer), each checked on its own, then together through the client."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import OptionError, SpecOptions, existing_folder, option
from conformance._target import TargetError, host_port


def _service(word: str) -> tuple[str, str]:
    role, sep, url = word.partition("=")
    if not sep or not role:
        raise OptionError(f"{word!r} is not ROLE=URL")
    try:
        host_port(url)
    except TargetError as exc:
        raise OptionError(f"{role}: {exc}") from None
    return role, url


@dataclass(frozen=True)
class Options(SpecOptions):
    """The pipeline's options: where its other services answer, and where its tables are."""

    services: dict[str, str] = option(
        {}, parse=_service, metavar="ROLE=URL", flag="--service", outside=lambda _: True,
        help="where one of the services answers, e.g. writer=http://127.0.0.1:5003/ (default: "
             "the base URL's host on the role's port: receiver 5001, processor 5002, writer "
             "5003)")
    output_dir: str | None = option(
        None, check=existing_folder, metavar="DIR",
        help="for a writer that does not serve its tables: the folder it writes them in "
             "(read only)")
