"""What check authors use: the `requirement` marker, `CheckFailure`, and small `expect_*` helpers.

Rules: a check is a pytest test marked with the requirement ids it checks; it fails by raising
`CheckFailure` with expected and actual (any other exception fails it too, with its text); a
failure may name the one requirement it concerns, so one check can serve several. A check of an
optional requirement (a MAY, or a bonus's) that finds the feature absent altogether raises
`NotImplementedFeature`: "not implemented", never a failure; present but wrong is a failure.
"""

from __future__ import annotations

from typing import Any

import pytest

# pytest.skip.Exception is this class; named by its module, as a type checker cannot follow the
# attribute pytest hangs it on.
from _pytest.outcomes import Skipped

from conformance._http import Exchange


def requirement(*ids: str, needs: tuple[str, ...] | None = None) -> pytest.MarkDecorator:
    """Mark a check with the requirement ids it checks. It runs once what the spec says they
    need has passed; `needs`, when given, narrows that to these (each one the spec says every
    id of the check needs, directly or through another), for a check that rests on part of it
    only. A check never adds a need: the spec's `needs` are the one list (docs/ shows it)."""
    return pytest.mark.requirement(*ids, needs=None if needs is None else tuple(needs))


# What a failure says came when a check had nothing to show (`actual=None`): a report never
# says "actual: None", which a reader takes for a bug of the suite or a value the target sent.
NOTHING_CAME = "(nothing came: no answer, no value)"


class CheckFailure(AssertionError):
    """A check saw something other than what a requirement asks for.

    `actual` None (a value that was never there) is shown as NOTHING_CAME, never as "None"."""

    def __init__(self, message: str, *, expected: Any = "", actual: Any = "",
                 reproduce: str = "", requirement: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expected = str(expected)
        self.actual = NOTHING_CAME if actual is None else str(actual)
        self.reproduce = reproduce
        self.requirement = requirement


class NotImplementedFeature(CheckFailure):
    """The feature a requirement asks for is not there at all (no route, no function), as
    opposed to there and wrong: for an optional requirement (a MAY, or part of a bonus) the
    verdict is "not implemented" (for a bonus, "not attempted"), which never gates and is never
    scored as failed; what needs it is "not implemented" too. For a required one it is an
    ordinary failure, so say what was expected, what came and how to see it, as for any."""


class NotRun(Skipped):
    """A check cannot judge its requirement because something it builds on is missing (for
    instance no way to create a task was found); the requirement is reported "not run"."""

    def __init__(self, reason: str) -> None:
        super().__init__(msg=reason, allow_module_level=False)


class CheckFailures(AssertionError):
    """Several requirements failed in one check (fuzzing finds them together)."""

    def __init__(self, failures: list[CheckFailure]) -> None:
        super().__init__("; ".join(f.message for f in failures))
        self.failures = failures


def expect_status(ex: Exchange, expected: int | set[int], *,
                  requirement: str | None = None) -> None:
    """Fail unless the exchange's status is `expected` (or one of them)."""
    allowed = {expected} if isinstance(expected, int) else expected
    if ex.status not in allowed:
        want = " or ".join(str(s) for s in sorted(allowed))
        raise CheckFailure(f"{ex.request_line} answered {ex.status}, expected {want}",
                           expected=f"status {want}", actual=ex.summary(),
                           reproduce=ex.curl(), requirement=requirement)


def expect_json_member(ex: Exchange, key: str, *, requirement: str | None = None) -> Any:
    """Return body[key] when the body is a JSON object with that member, else fail."""
    try:
        body = ex.json()
    except ValueError as exc:
        raise CheckFailure(f"{ex.request_line}: the body is not JSON ({exc})",
                           expected=f'a JSON object with "{key}"', actual=ex.summary(),
                           reproduce=ex.curl(), requirement=requirement) from None
    if not isinstance(body, dict):
        # Say what the body is: "no member" would send a student looking for a misspelt key
        # in a body that is a bare string or a list.
        raise CheckFailure(f"{ex.request_line}: the body is a JSON {json_kind(body)}, not an "
                           f"object", expected=f'a JSON object with "{key}"',
                           actual=ex.summary(), reproduce=ex.curl(), requirement=requirement)
    if key not in body:
        raise CheckFailure(f'{ex.request_line}: the body has no "{key}" member',
                           expected=f'a JSON object with "{key}"', actual=ex.summary(),
                           reproduce=ex.curl(), requirement=requirement)
    return body[key]


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words: object, array, string, number, boolean or
    null."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def expect_equal(ex: Exchange, what: str, actual: Any, expected: Any, *,
                 requirement: str | None = None) -> None:
    """Fail unless `actual == expected`, naming `what` was compared."""
    if actual != expected:
        raise CheckFailure(f"{ex.request_line}: {what} is {actual!r}, expected {expected!r}",
                           expected=repr(expected), actual=ex.summary(),
                           reproduce=ex.curl(), requirement=requirement)


def raise_all(failures: list[CheckFailure]) -> None:
    """Raise the failures found, if any: one as itself, several together."""
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise CheckFailures(failures)
