"""The reference `probe.py`: ask every domain of a list for its main page over HTTP and then HTTPS,
and write what came back to `domain_status` as a JSON list of dicts (seed 002's first program).

Run it as `python probe.py DOMAINS.csv [-o domain_status] [--limit N] [--timeout S]`. Rules, as
openapi/probe.requirements.yaml states them:
- the list: `rank,domain` lines (the seed's top-10k CSV) or one domain a line; blank lines and
  a header line are skipped, names are lower-cased and IDN names punycoded, a domain listed twice
  is probed once, and a line that is not a domain name is skipped with a message on stderr;
- per domain, `GET /` with `Accept-Language: ru-RU` over HTTP, and once that has ended, over
  HTTPS; redirects are not followed (the main page's own answer is recorded);
- everything is async, name resolution too (aiohttp's AsyncResolver, c-ares through aiodns); at
  most `--limit` domains (1,000) are in progress at once, each holding at most one connection,
  never kept alive, so at most that many connections are open; every request has a timeout;
- records are written as they come, the file valid JSON once the program ends (Ctrl+C too);
  a list that cannot be read is an error before `domain_status` is touched: nothing is lost.
Exit status: 0 when the list was probed, 2 for a bad list or command line, 130 on Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from multidict import MultiMapping

HEADERS = {"Accept-Language": "ru-RU"}
DEFAULT_LIMIT = 1000
DEFAULT_TIMEOUT = 10.0
# Labels of letters, digits and inner hyphens; two labels at least, the last not a number (an
# address is not a domain), 253 characters in all.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.(?![0-9]+$){_LABEL}")

Record = dict[str, Any]


class ListError(Exception):
    """The list of domains cannot be read, or holds no domain."""


def domain_of(field: str) -> str | None:
    """The domain name a field of the list holds, normalised (lower case, punycode, no trailing
    dot), or None when it is not one."""
    name = field.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label, a label over 63 characters
        return None
    return name if DOMAIN.fullmatch(name) else None


def parse_domains(lines: list[str]) -> tuple[list[str], list[str]]:
    """The distinct domains of a list's lines in order, and a message for each line skipped as
    not a domain. A line is `rank,domain` or a lone domain; a first line whose rank is not a
    number is the header."""
    domains: dict[str, None] = {}  # a dict keeps the order and drops duplicates
    skipped: list[str] = []
    for number, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.split(",")]
        if not any(fields):
            continue
        if len(fields) == 2 and not fields[0].isdigit():
            if number == 1:
                continue  # `rank,domain` or any header of two columns
            name = None
        else:
            name = domain_of(fields[-1]) if len(fields) <= 2 else None
        if name is None:
            skipped.append(f"line {number}: {line.strip()!r} is not a domain name, skipped")
        else:
            domains.setdefault(name)
    return list(domains), skipped


def read_domains(path: Path) -> tuple[list[str], list[str]]:
    """`parse_domains` of a file; ListError when it cannot be read or names no domain."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a list saved by Excel starts with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ListError(f"cannot read the list {str(path)!r}: {reason}") from None
    domains, skipped = parse_domains(text.splitlines())
    if not domains:
        raise ListError(f"the list {str(path)!r} holds no domain name")
    return domains, skipped


def failed(scheme: str, reason: str | None) -> Record:
    """The fields of one scheme when no answer came; `reason` is https_status's text."""
    return {f"{scheme}_status": reason, f"{scheme}_server": None,
            f"{scheme}_content_length": None, f"{scheme}_content_language": [],
            f"{scheme}_cookies": []}


def answered(scheme: str, status: int | str, headers: MultiMapping[str],
             body: bytes | None) -> Record:
    """The fields of one scheme from an answer (`body` None: it never ended)."""
    languages = [tag.strip() for value in headers.getall("Content-Language", [])
                 for tag in value.split(",") if tag.strip()]
    return {f"{scheme}_status": status, f"{scheme}_server": headers.get("Server"),
            f"{scheme}_content_length": None if body is None else len(body),
            f"{scheme}_content_language": languages,
            # One item per Set-Cookie header as sent: a cookie's attributes are worth keeping,
            # and two cookies of one name are both there (a cookie jar would keep one).
            f"{scheme}_cookies": headers.getall("Set-Cookie", [])}


def readable(exc: BaseException, timeout: float) -> str:
    """What went wrong, for a person: the TLS error as OpenSSL words it, or the failure."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        return f"TLS error: {getattr(error, 'verify_message', None) or error}"
    if isinstance(exc, aiohttp.ClientSSLError):  # the handshake failed (plain HTTP on 443...)
        # OpenSSL's words without the line of CPython's C source they were raised on.
        return "TLS error: " + re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.os_error))
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"no connection: {exc}" if str(exc) else f"no connection: {type(exc).__name__}"


async def request(session: aiohttp.ClientSession, scheme: str, domain: str,
                  timeout: float) -> Record:
    """One scheme's fields for one domain. Never raises: a failure is a record too."""
    try:
        # Not following redirects: the record is the main page's own answer (a 301 is one).
        async with session.get(f"{scheme}://{domain}/", allow_redirects=False) as answer:
            try:
                body: bytes | None = await answer.read()
            except (TimeoutError, aiohttp.ClientError):
                body = None  # the headers came and the body never ended
            # Over HTTPS the seed asks whether the connection worked, not for the code.
            status = answer.status if scheme == "http" else "Ok"
            return answered(scheme, status, answer.headers, body)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any failure of one domain is that domain's record, no more
        return failed(scheme, None if scheme == "http" else readable(exc, timeout))


async def probe(session: aiohttp.ClientSession, domain: str, timeout: float) -> Record:
    """A domain's record: HTTP first, then HTTPS once HTTP has ended."""
    record: Record = {"domain": domain}
    record.update(await request(session, "http", domain, timeout))
    record.update(await request(session, "https", domain, timeout))
    return record


@contextmanager
def json_list(path: Path) -> Iterator[TextIO]:
    """A file holding a JSON list whose items are written as they come: the list is closed
    whatever ends the writing, so the file is valid JSON with every record done."""
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        try:
            yield out
        finally:
            out.write("\n]\n")


async def probe_all(domains: list[str], out: TextIO, limit: int, timeout: float) -> int:
    """Probe every domain, at most `limit` at once, writing each record to `out` (a `json_list`)
    when it is done; how many were written."""
    # A domain waits for its turn here rather than in the connector's queue, where the time
    # spent waiting would count against its requests' timeout.
    turns = asyncio.Semaphore(limit)
    connector = aiohttp.TCPConnector(
        limit=limit, force_close=True,  # one request per connection: none stays open idle
        resolver=aiohttp.AsyncResolver())
    written = 0
    async with aiohttp.ClientSession(
            connector=connector, headers=HEADERS,
            timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def one(domain: str) -> Record:
            async with turns:
                return await probe(session, domain, timeout)

        for done in asyncio.as_completed([one(d) for d in domains]):
            record = await done
            out.write(("\n" if written == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
            out.flush()  # on disk as it comes: a run stopped half-way keeps what it did
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    """Run the prober; the exit status."""
    parser = argparse.ArgumentParser(prog="probe.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("domains", type=Path,
                        help="the list: rank,domain lines, or one domain a line")
    parser.add_argument("-o", "--output", type=Path, default=Path("domain_status"),
                        help="where the JSON list of records goes (%(default)s)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help="domains (and connections) in progress at once (%(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds one request may take, all told (%(default)s)")
    args = parser.parse_args(argv)
    if args.limit < 1 or args.timeout <= 0:
        parser.error("--limit and --timeout must be positive")
    try:
        domains, skipped = read_domains(args.domains)
    except ListError as exc:
        print(f"probe: error: {exc}", file=sys.stderr)
        return 2
    for message in skipped:
        print(f"probe: {message}", file=sys.stderr)
    try:
        with json_list(args.output) as out:
            written = asyncio.run(probe_all(domains, out, args.limit, args.timeout))
    except OSError as exc:  # the output cannot be written
        print(f"probe: error: cannot write {str(args.output)!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"probe: interrupted; {args.output} holds the records done", file=sys.stderr)
        return 130
    print(f"probe: {written} domains probed, records in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
