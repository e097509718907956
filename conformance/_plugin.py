"""The pytest plugin that turns a spec's checks into per-requirement verdicts.

Rules: every collected check names known requirement ids (else the run stops with an error);
checks run so that whatever a check needs is checked before it; a check whose need failed, was
not run or was skipped does not run and says why; each finished check's outcome is kept per
requirement, and `results()` folds them into verdicts by the rules of `_result`. A request
the `http` fixture had to send again (`conformance._http.Retry`) is a note of the check that
sent it, however late it came.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import pytest

from conformance._checks import CheckFailure, CheckFailures, NotRun
from conformance._http import Http
from conformance._options import RunOptions, SpecOptions
from conformance._result import Failure, RequirementResult, Verdict
from conformance._spec import Spec
from conformance._target import ProgramTarget, ServerTarget

RETRY_NOTES = 3  # notes of requests sent again, at most, per check


@dataclass
class _Outcome:
    status: str  # "pass" | "fail" | "not_run" | "skipped"
    reason: str = ""
    failures: dict[str | None, list[Failure]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    complete: bool = False


class CollectionProblem(Exception):
    """The suite itself is inconsistent with its spec (a bug of ours, not a verdict)."""


class ConformancePlugin:
    """Registered with `pytest.main(plugins=[...])` for one run of one spec against one target."""

    def __init__(self, spec: Spec, target: ServerTarget | ProgramTarget,
                 options: RunOptions[SpecOptions], *,
                 only: set[str] | None = None,
                 on_progress: Callable[[int, int, str], None] | None = None) -> None:
        self._spec = spec
        self._target = target
        self._options = options
        self._only = only
        self.on_progress = on_progress or (lambda done, total, label: None)
        self.problems: list[str] = []
        self._items: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._outcomes: dict[str, _Outcome] = {}
        self._by_req: dict[str, list[str]] = {}
        self._total = 0
        self._sending = ""  # the node id of the check running now, who sends what is sent
        self._clients: list[Http] = []
        self.interrupted = False
        self.errors: list[str] = []

    # fixtures for checks ------------------------------------------------------------------

    @pytest.fixture(scope="session")
    def spec(self) -> Spec:
        """The behaviour spec being checked."""
        return self._spec

    @pytest.fixture(scope="session")
    def options(self) -> RunOptions[SpecOptions]:
        """Limits, seed and fuzzing budget of this run, and the spec's own options (`.spec`)."""
        return self._options

    @pytest.fixture(scope="session")
    def server(self) -> ServerTarget:
        """The server under test (specs of kind http-server)."""
        assert isinstance(self._target, ServerTarget), "this spec checks a program, not a server"
        return self._target

    @pytest.fixture(scope="session")
    def program(self) -> ProgramTarget:
        """The program under test (specs of kind program)."""
        assert isinstance(self._target, ProgramTarget), "this spec checks a server, not a program"
        return self._target

    @pytest.fixture(scope="session")
    def http(self, server: ServerTarget) -> Iterator[Http]:
        """An HTTP client for the server under test; every request has a deadline."""
        with Http(server.base_url, self._options.timeout, explain=server.explain,
                  sender=lambda: self._sending) as h:
            self._clients.append(h)
            yield h

    @pytest.fixture
    def note(self, request: pytest.FixtureRequest) -> Callable[[str], None]:
        """Record an observation (such as which MAY choice a server made) for the report."""
        return lambda text: request.node.user_properties.append(("note", text))

    # collection ---------------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line(
            "markers", "requirement(*ids, needs=()): the requirement ids a check checks"
        )

    def _marker(self, item: pytest.Item) -> tuple[tuple[str, ...], tuple[str, ...]]:
        marks = list(item.iter_markers("requirement"))
        if not marks:
            self.problems.append(f"{item.nodeid}: names no requirement")
            return (), ()
        ids = tuple(i for m in marks for i in m.args)
        extra = tuple(n for m in marks for n in m.kwargs.get("needs", ()))
        unknown = [i for i in (*ids, *extra) if i not in self._spec.by_id]
        if unknown:
            self.problems.append(f"{item.nodeid}: unknown requirement ids {unknown}")
        return ids, extra

    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        wanted = self._spec.closure(self._only) if self._only else None
        kept: list[pytest.Item] = []
        for item in items:
            ids, extra = self._marker(item)
            if wanted is not None and not wanted.intersection(ids):
                continue
            needs = {n for i in ids if i in self._spec.by_id for n in self._spec.by_id[i].needs}
            needs.update(extra)
            needs.difference_update(ids)
            self._items[item.nodeid] = (ids, tuple(sorted(needs)))
            kept.append(item)
        if self.problems:
            raise CollectionProblem("; ".join(self.problems))
        items[:] = self._order(kept)
        for item in items:
            for rid in self._items[item.nodeid][0]:
                self._by_req.setdefault(rid, []).append(item.nodeid)
        self._total = len(items)

    def _order(self, items: list[pytest.Item]) -> list[pytest.Item]:
        """Stable topological order: a check comes after every check of what it needs."""
        checkers: dict[str, set[str]] = {}
        for item in items:
            for rid in self._items[item.nodeid][0]:
                checkers.setdefault(rid, set()).add(item.nodeid)
        placed: set[str] = set()
        pending = list(items)
        ordered: list[pytest.Item] = []
        while pending:
            for item in pending:
                needs = self._items[item.nodeid][1]
                if all(checkers.get(n, set()) <= placed for n in needs):
                    break
            else:
                raise CollectionProblem(
                    "checks need each other in a cycle: " + ", ".join(i.nodeid for i in pending)
                )
            pending.remove(item)
            placed.add(item.nodeid)
            ordered.append(item)
        return ordered

    # running ------------------------------------------------------------------------------

    def _status(self, rid: str) -> tuple[str, str]:
        """The verdict so far of a requirement, with the reason."""
        verdict, reason, _ = _fold(rid, self._outcomes_of(rid))
        return verdict, reason

    def _outcomes_of(self, rid: str) -> list[_Outcome]:
        return [self._outcomes[n] for n in self._by_req.get(rid, []) if n in self._outcomes]

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._sending = nodeid  # before its fixtures are set up: they may send requests too

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        needs = self._items[item.nodeid][1]
        for need in needs:
            status, reason = self._status(need)
            if status == "pass":
                continue
            word = {"fail": "failed", "not_run": "was not run", "skipped": "was skipped"}[status]
            cause = f"needs {need}, which {word}" + (f": {reason}" if reason else "")
            self._outcomes[item.nodeid] = _Outcome("skipped" if status == "skipped" else "not_run",
                                                   cause)
            pytest.skip(cause)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if item.nodeid in self._outcomes and self._outcomes[item.nodeid].status in (
                "not_run", "skipped") and call.when == "setup":
            return report
        if call.when == "call" or (call.when == "setup" and report.outcome != "passed"):
            self._outcomes[item.nodeid] = self._outcome(item, call, report)
        return report

    def _outcome(self, item: pytest.Item, call: pytest.CallInfo[None],
                 report: pytest.TestReport) -> _Outcome:
        notes = [str(v) for k, v in item.user_properties if k == "note"]
        if report.passed:
            return _Outcome("pass", notes=notes)
        if report.skipped:
            exc = call.excinfo.value if call.excinfo else None
            reason = str(getattr(exc, "msg", "") or exc or "skipped")
            return _Outcome("not_run" if isinstance(exc, NotRun) else "skipped", reason,
                            notes=notes)
        exc = call.excinfo.value if call.excinfo else None
        check = item.name
        failures: dict[str | None, list[Failure]] = {}
        if isinstance(exc, CheckFailures):
            found = exc.failures
        elif isinstance(exc, CheckFailure):
            found = [exc]
        else:
            # Checks turn everything a target can do into CheckFailure, so anything else is a
            # bug of the suite: it must not count against the target.
            where = report.longreprtext.strip().splitlines()[-1:] or [repr(exc)]
            self.errors.append(f"{item.nodeid}: {where[0]}")
            return _Outcome("not_run", f"the check itself broke ({where[0]})", notes=notes)
        for f in found:
            failures.setdefault(f.requirement, []).append(
                Failure(f.message, f.expected, f.actual, f.reproduce, check))
        return _Outcome("fail", found[0].message, failures, notes,
                        complete=isinstance(exc, CheckFailures))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = True

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.on_progress(len(self._outcomes), self._total, location[2])

    # verdicts -----------------------------------------------------------------------------

    def results(self) -> list[RequirementResult]:
        """Fold the checks' outcomes into one verdict per requirement of the selection."""
        out = []
        for req in self._spec.requirements:
            if self._only is not None and req.id not in self._only:
                continue
            nodeids = self._by_req.get(req.id, [])
            verdict, reason, failures = _fold(req.id, self._outcomes_of(req.id))
            out.append(RequirementResult(
                req, verdict, reason, failures, checks=[n.split("::")[-1] for n in nodeids],
                notes=[n for nodeid in nodeids if nodeid in self._outcomes
                       for n in self._notes(nodeid)],
            ))
        return out

    def _notes(self, nodeid: str) -> list[str]:
        """A finished check's notes: its own, then a line for each request it had sent again."""
        retried = [r.note() for h in self._clients for r in h.retries() if r.sender == nodeid]
        if len(retried) > RETRY_NOTES:  # fuzzing may meet dozens: the first few say what it was
            more = len(retried) - RETRY_NOTES
            retried[RETRY_NOTES:] = [f"... and {more} more of its requests were sent once more "
                                     f"on a new connection the same way"]
        return [*self._outcomes[nodeid].notes, *retried]


def _fold(rid: str, outcomes: list[_Outcome]) -> tuple[Verdict, str, list[Failure]]:
    """One requirement's verdict, reason and failures from the outcomes of its checks."""
    if not outcomes:
        return "skipped", "no check of it ran", []
    failures = [f for o in outcomes for f in o.failures.get(rid, []) + o.failures.get(None, [])]
    if failures:
        return "fail", failures[0].message, failures
    for o in outcomes:
        if o.status == "not_run":
            return "not_run", o.reason, []
    for o in outcomes:
        # A check that stopped at another requirement's failure did not finish checking this one;
        # one that reported several failures together (complete) did.
        if o.status == "fail" and not o.complete:
            others = ", ".join(sorted(k for k in o.failures if k))
            return "not_run", f"its check stopped at a failure of {others}", []
    if any(o.status in ("pass", "fail") for o in outcomes):
        return "pass", "", []
    return "skipped", outcomes[0].reason, []
