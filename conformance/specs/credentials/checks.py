"""Checks of the `credentials` spec (openapi/credentials.requirements.yaml) against any server.

Each check names the requirements it checks; it sends its own requests, so one broken behaviour
fails one requirement. The species table is written out here again on purpose: the suite is an
oracle independent of the reference it judges. What is not about the body's JSON (URL decoding,
other methods and paths) is judged on status and body as sent, so a body that is not JSON fails
CRED-04 and nothing else; "answered like" another request means the same status and body.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from conformance._checks import (
    CheckFailure,
    NotRun,
    expect_equal,
    expect_json_member,
    expect_status,
    requirement,
)
from conformance._fuzz import fuzz_check
from conformance._http import Exchange, Http
from conformance._options import RunOptions, SpecOptions
from conformance._spec import Spec
from conformance._target import ServerTarget, host_port

NAMES = {
    "Cyberman": "John Lumic",
    "Dalek": "Davros",
    "Judoon": "Shadow Proclamation Convention 15 Enforcer",
    "Human": "Leonardo da Vinci",
    "Ood": "Klineman Halpen",
    "Silence": "Tasha Lem",
    "Slitheen": "Coca-Cola salesman",
    "Sontaran": "General Staal",
    "Time Lord": "Rassilon",
    "Weeping Angel": "The Division Representative",
    "Zygon": "Broton",
}
ONE_WORD = [s for s in NAMES if " " not in s]
TWO_WORDS = [s for s in NAMES if " " in s]
# Not in the table in any letter case or spacing, so unknown whatever a server chose on CRED-14.
UNKNOWN = ["Dragon", "Tardis", "Dalekk", "Time-Lord", "Cyberwoman"]
# Raw query values, each a known species once URL-decoded.
ENCODED = {
    "Time%20Lord": "Time Lord",
    "Time+Lord": "Time Lord",
    "Weeping%20Angel": "Weeping Angel",
    "Weeping+Angel": "Weeping Angel",
    "%44alek": "Dalek",
    "Cyber%6dan": "Cyberman",
}


def ask(raw: str) -> str:
    """The request target for a raw (already encoded) species value."""
    return f"/?species={raw}"


def media_type(content_type: str) -> str:
    """`application/json` from `Application/JSON; charset=utf-8`."""
    return content_type.split(";", 1)[0].strip().lower()


def expect_unknown_answer(http: Http, target: str, rid: str) -> None:
    """The answer to `target` is 404 and {"credentials": "Unknown"}."""
    ex = http.get(target, requirement=rid)
    expect_status(ex, 404, requirement=rid)
    expect_equal(ex, '"credentials"', expect_json_member(ex, "credentials", requirement=rid),
                 "Unknown", requirement=rid)


# MUST ---------------------------------------------------------------------------------------

@requirement("CRED-01")
def test_server_answers_http(http: Http) -> None:
    """The server answers an HTTP request."""
    http.get(ask("Dalek"))


@requirement("CRED-02", needs=("CRED-01",))  # asked as spelt: URL decoding plays no part
def test_one_word_species_get_200(http: Http) -> None:
    """Each one-word species gets 200."""
    for species in ONE_WORD:
        expect_status(http.get(ask(species)), 200)


@requirement("CRED-02")  # URL-encoded: rests on CRED-06, as the spec says
def test_two_word_species_get_200(http: Http) -> None:
    """Time Lord and Weeping Angel get 200."""
    for species in TWO_WORDS:
        expect_status(http.get(ask(quote(species))), 200)


@requirement("CRED-03")
def test_answers_are_json(http: Http) -> None:
    """Known and unknown species are answered as application/json."""
    for target in (ask("Dalek"), ask("Dragon")):
        ex = http.get(target)
        if media_type(ex.content_type) != "application/json":
            raise CheckFailure(f"{ex.request_line}: Content-Type is {ex.content_type or 'missing'}",
                               expected="Content-Type: application/json", actual=ex.summary(),
                               reproduce=ex.curl())


@requirement("CRED-04")
def test_answers_are_credentials_objects(http: Http) -> None:
    """Every answer is a JSON object with a string "credentials"."""
    for raw in [*ONE_WORD, *(quote(s) for s in TWO_WORDS), *UNKNOWN]:
        ex = http.get(ask(raw))
        value = expect_json_member(ex, "credentials")
        if not isinstance(value, str):
            raise CheckFailure(f'{ex.request_line}: "credentials" is not a string',
                               expected='a string "credentials"', actual=ex.summary(),
                               reproduce=ex.curl())


@requirement("CRED-05", needs=("CRED-04",))  # asked as spelt: URL decoding plays no part
def test_one_word_species_get_their_names(http: Http) -> None:
    """Each one-word species gets its name from the table."""
    expect_names(http, {species: ask(species) for species in ONE_WORD}, "one-word species")


@requirement("CRED-05")  # URL-encoded: rests on CRED-06, as the spec says
def test_two_word_species_get_their_names(http: Http) -> None:
    """Time Lord and Weeping Angel get their names from the table."""
    expect_names(http, {species: ask(quote(species)) for species in TWO_WORDS},
                 "two-word species (asked URL-encoded)")


def expect_names(http: Http, targets: dict[str, str], what: str) -> None:
    """Each species (asked at its target) gets its name from the table; one failure that
    names every wrong one, so a student fixes them all at once."""
    wrong: list[tuple[str, Exchange, object]] = []
    for species, target in targets.items():
        ex = http.get(target)
        value = expect_json_member(ex, "credentials")
        if value != NAMES[species]:
            wrong.append((species, ex, value))
    if wrong:
        said = "; ".join(f"{species} got {value!r}, expected {NAMES[species]!r}"
                         for species, _, value in wrong)
        raise CheckFailure(
            f"{len(wrong)} of the {len(targets)} {what} got another name: {said}",
            expected="; ".join(f"{species}: {NAMES[species]!r}" for species, _, _ in wrong),
            actual="\n".join(f"{ex.request_line}: {ex.summary()}" for _, ex, _ in wrong),
            reproduce="\n".join(ex.curl() for _, ex, _ in wrong))


@requirement("CRED-06")
def test_species_is_url_decoded(http: Http) -> None:
    """%20, + and other %XX escapes are decoded before the lookup: each spelling gets the answer
    its species gets (status and body, whatever the body's format), not an unknown one's."""
    plain = {s: http.get(ask(s)) for s in dict.fromkeys(ENCODED.values()) if " " not in s}
    try:
        unknown: Exchange | None = http.get(ask(UNKNOWN[0]))
    except CheckFailure:
        unknown = None  # it does not answer an unknown species (CRED-07's): judged without it
    dalek = plain["Dalek"]
    if unknown is not None and same_answer(dalek, unknown):
        raise NotRun(f"{dalek.request_line} and {unknown.request_line} get the same answer, so "
                     f"whether a spelling was decoded cannot be told from its answer")
    first: dict[str, Exchange] = dict(plain)
    for raw, species in ENCODED.items():
        ex = http.get(ask(raw))
        if (unknown is not None and same_answer(ex, unknown)) or (
                ex.status == 404 != dalek.status) or _credentials_or_none(ex) == "Unknown":
            raise CheckFailure(
                f"{ex.request_line} is answered as an unknown species, so {raw!r} was not "
                f"URL-decoded to {species!r}",
                expected=f"the answer for {species}", actual=ex.summary(), reproduce=ex.curl())
        seen = first.setdefault(species, ex)
        if not same_answer(ex, seen):
            raise CheckFailure(
                f"{ex.request_line} is answered otherwise than {seen.request_line}, though "
                f"both spell {species}", expected=seen.summary(), actual=ex.summary(),
                reproduce=f"{seen.curl()}\n{ex.curl()}")


@requirement("CRED-07")
def test_unknown_species_get_404(http: Http) -> None:
    """A species not in the table gets 404."""
    for species in UNKNOWN:
        expect_status(http.get(ask(species)), 404)


@requirement("CRED-08")
def test_unknown_species_get_unknown(http: Http) -> None:
    """A species not in the table gets {"credentials": "Unknown"}."""
    for species in UNKNOWN:
        ex = http.get(ask(species))
        expect_equal(ex, '"credentials"', expect_json_member(ex, "credentials"), "Unknown")


# SHOULD -------------------------------------------------------------------------------------

@requirement("CRED-09")
def test_content_type_has_no_charset(http: Http) -> None:
    """The Content-Type is exactly application/json."""
    for target in (ask("Dalek"), ask("Dragon")):
        ex = http.get(target)
        if ex.content_type.strip().lower() != "application/json":
            raise CheckFailure(f"{ex.request_line}: Content-Type is {ex.content_type!r}",
                               expected="Content-Type: application/json", actual=ex.summary(),
                               reproduce=ex.curl())


@requirement("CRED-10")
def test_missing_or_empty_species_is_unknown(http: Http) -> None:
    """No species, an empty one, or another parameter gets the unknown answer."""
    for target in ("/", "/?species=", "/?kind=Dalek"):
        expect_unknown_answer(http, target, "CRED-10")


@requirement("CRED-11")
def test_idle_connection_does_not_block_others(http: Http, server: ServerTarget,
                                                options: RunOptions[SpecOptions]) -> None:
    """An open, idle connection does not stop another client from getting its answer."""
    host, port = host_port(server.base_url)
    idle: list[socket.socket] = []
    try:
        for partial in (b"", b"GET /?species=Dalek HTTP/1.1\r\nHost: x\r\n"):
            sock = socket.create_connection((host, port), timeout=options.timeout)
            sock.sendall(partial)
            idle.append(sock)
        try:
            http.get(ask("Dalek"), timeout=min(options.timeout, 3.0))
        except CheckFailure as exc:
            raise CheckFailure(
                f"while two other connections stayed open and idle, {exc.message}",
                expected="an answer while another client is slow", actual=exc.actual,
                reproduce="# in one shell, hold a connection open:  nc " + f"{host} {port}\n"
                          + exc.reproduce) from None
    finally:
        for sock in idle:
            sock.close()


@requirement("CRED-12", "CRED-13")
def test_fuzzed_queries(http: Http, spec: Spec, options: RunOptions[SpecOptions],
                        note: Callable[[str], None]) -> None:
    """Generated queries get no 5xx and answers that match openapi/credentials.yaml."""
    assert spec.openapi is not None
    report = fuzz_check(http, spec.openapi, no_server_error="CRED-12", matches_spec="CRED-13",
                        seed=options.seed, max_examples=options.fuzz_examples,
                        seconds=options.fuzz_seconds,
                        max_rate=options.max_rate)
    note(f"fuzzing sent {report.sent} requests in {report.seconds:.1f} s (seed {options.seed})")


# MAY ----------------------------------------------------------------------------------------

@requirement("CRED-14")
def test_letter_case_is_exact_or_ignored(http: Http, note: Callable[[str], None]) -> None:
    """dalek and DALEK are either unknown or Dalek, the same way."""
    choices = set()
    curls = []
    for raw in ("dalek", "DALEK"):
        ex = http.get(ask(raw))
        curls.append(ex.curl())
        value = expect_json_member(ex, "credentials")
        if (ex.status, value) == (404, "Unknown"):
            choices.add("exact")
        elif (ex.status, value) == (200, NAMES["Dalek"]):
            choices.add("case-insensitive")
        else:
            raise CheckFailure(f"{ex.request_line} is neither unknown nor Dalek",
                               expected='404 "Unknown" or 200 "Davros"', actual=ex.summary(),
                               reproduce=ex.curl())
    if len(choices) > 1:
        raise CheckFailure("dalek and DALEK are answered differently",
                           expected="one rule for letter case", actual=", ".join(sorted(choices)),
                           reproduce="\n".join(curls))
    note(f"letter case: {choices.pop()}")


# CRED-15 and CRED-16 ask how other methods and paths are answered, not what the body is: "like
# GET /" is the same status and body as GET /?species=Dalek, so a body that is not JSON (CRED-04's
# failure) leaves them judged, not failed twice.

@requirement("CRED-15")
def test_other_methods_refused_or_served(http: Http, note: Callable[[str], None]) -> None:
    """POST, PUT and DELETE get 405 with Allow, 501, or the answer GET gets."""
    get = http.get(ask("Dalek"))
    seen = set()
    for method in ("POST", "PUT", "DELETE"):
        ex = http.request(method, ask("Dalek"), content=b"")
        if ex.status == 405 and "allow" in ex.headers:
            seen.add("405")
        elif ex.status == 501:
            seen.add("501")
        elif same_answer(ex, get):
            seen.add("served like GET")
        else:
            raise CheckFailure(f"{ex.request_line} answered {ex.status}",
                               expected=f"405 with an Allow header, 501, or the answer "
                                        f"{get.request_line} gets: {get.summary()}",
                               actual=ex.summary() + f"; Allow: {ex.headers.get('allow')}",
                               reproduce=f"{ex.curl()}\n{get.curl()}")
    note("other methods: " + ", ".join(sorted(seen)))


@requirement("CRED-16")
def test_other_paths_not_found_or_served(http: Http, note: Callable[[str], None]) -> None:
    """Another path gets 404 or the same answer as /."""
    get = http.get(ask("Dalek"))
    ex = http.get("/elsewhere?species=Dalek")
    if ex.status == 404:
        note("other paths: 404")
    elif same_answer(ex, get):
        note("other paths: served like /")
    else:
        raise CheckFailure(f"{ex.request_line} answered {ex.status}",
                           expected=f"404, or the answer {get.request_line} gets: "
                                    f"{get.summary()}",
                           actual=ex.summary(), reproduce=f"{ex.curl()}\n{get.curl()}")


def same_answer(one: Exchange, other: Exchange) -> bool:
    """The same status and body: the same JSON value when both bodies are JSON (spacing and
    key order aside), else the same bytes."""
    return one.status == other.status and _body_value(one) == _body_value(other)


def _body_value(ex: Exchange) -> Any:
    try:
        return ("json", ex.json())
    except ValueError:
        return ("bytes", ex.body)


def _credentials_or_none(ex: Exchange) -> object:
    try:
        body = ex.json()
    except ValueError:
        return None
    return body.get("credentials") if isinstance(body, dict) else None
