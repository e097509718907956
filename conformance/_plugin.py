"""The pytest plugin that turns a spec's checks into per-requirement verdicts.

Rules: every collected check names known requirement ids (else the run stops with an error);
a check needs what the spec says its requirements need, or some of it, never more
(`check_needs`); checks run so that whatever a check needs is checked before it; a check
whose need failed, was not run, was skipped or is not implemented does not run and says
why; each finished check's outcome is kept per requirement, and `results()` folds them
into verdicts by the rules of `_result`. A `NotImplementedFeature` is "not implemented"
for an optional requirement (a MAY, a bonus's) and a failure for a required one, so a
check need not know which it judges. A request the `http` fixture had to send again
(`conformance._http.Retry`) is a note of the check that sent it, however late it came.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import pytest

from conformance._checks import CheckFailure, CheckFailures, NotImplementedFeature, NotRun
from conformance._http import Http
from conformance._options import RunOptions, SpecOptions
from conformance._result import Failure, RequirementResult, Verdict
from conformance._spec import Requirement, Spec
from conformance._target import ProgramTarget, ServerTarget

RETRY_NOTES = 3  # notes of requests sent again, at most, per check


@dataclass
class _Outcome:
    status: str  # "pass" | "fail" | "not_run" | "skipped" | "not_implemented"
    reason: str = ""
    failures: dict[str | None, list[Failure]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    complete: bool = False
    # What the check found absent (NotImplementedFeature), by requirement id as failures are;
    # empty for a check that did not run because a need of it is not implemented.
    absent: dict[str | None, list[Failure]] = field(default_factory=dict)


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
            "markers", "requirement(*ids, needs=None): the requirement ids a check checks"
        )

    def _marker(self, item: pytest.Item) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The ids a check checks, and the ids it needs to have passed first."""
        marks = list(item.iter_markers("requirement"))
        if not marks:
            self.problems.append(f"{item.nodeid}: names no requirement")
            return (), ()
        ids = tuple(i for m in marks for i in m.args)
        given = [m.kwargs.get("needs") for m in marks]
        named = None if all(g is None for g in given) else tuple(
            n for g in given for n in g or ())
        unknown = [i for i in (*ids, *(named or ())) if i not in self._spec.by_id]
        if unknown:
            self.problems.append(f"{item.nodeid}: unknown requirement ids {unknown}")
        needs, stray = check_needs(self._spec, ids, named)
        if stray and not unknown:
            self.problems.append(
                f"{item.nodeid}: needs {stray}, which the spec does not say {', '.join(ids)} "
                f"need: add them to `needs` in {self._spec.name}.requirements.yaml")
        return ids, needs

    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        wanted = self._spec.closure(self._only) if self._only else None
        kept: list[pytest.Item] = []
        for item in items:
            ids, needs = self._marker(item)
            if wanted is not None and not wanted.intersection(ids):
                continue
            self._items[item.nodeid] = (ids, needs)
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
        verdict, reason, _ = _fold(self._spec.by_id[rid], self._outcomes_of(rid))
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
            word = {"fail": "failed", "not_run": "was not run", "skipped": "was skipped",
                    "not_implemented": "is not implemented"}[status]
            cause = f"needs {need}, which {word}" + (f": {reason}" if reason else "")
            # A need not implemented leaves its dependents not implemented too (when they are
            # optional: the fold decides per requirement); any other leaves them not run.
            kept = status if status in ("skipped", "not_implemented") else "not_run"
            self._outcomes[item.nodeid] = _Outcome(kept, cause)
            pytest.skip(cause)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if item.nodeid in self._outcomes and self._outcomes[item.nodeid].status in (
                "not_run", "skipped", "not_implemented") and call.when == "setup":
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
        absent: dict[str | None, list[Failure]] = {}
        for f in found:
            into = absent if isinstance(f, NotImplementedFeature) else failures
            into.setdefault(f.requirement, []).append(
                Failure(f.message, f.expected, f.actual, f.reproduce, check))
        status = "fail" if failures else "not_implemented"
        return _Outcome(status, found[0].message, failures, notes,
                        complete=isinstance(exc, CheckFailures), absent=absent)

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
            verdict, reason, failures = _fold(req, self._outcomes_of(req.id))
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


def check_needs(spec: Spec, ids: tuple[str, ...], named: tuple[str, ...] | None
                ) -> tuple[tuple[str, ...], list[str]]:
    """What a check of `ids` needs to have passed before it runs, and the ids among `named` that
    the spec does not say its requirements need.

    The spec's `needs` are the one list of what a requirement rests on (docs/ shows it), so a
    run's "not run: needs X" always names an X that list has: a check needs what
    the spec says its ids need, or, when it names its needs (`named`), only those, each one
    that every id of the check needs directly or through another (a check that rests on part
    of its requirement's needs judges it while another of them failed)."""
    known = [i for i in ids if i in spec.by_id]
    if named is None:
        own = {n for i in known for n in spec.by_id[i].needs}
        return tuple(sorted(own - set(ids))), []
    allowed = [spec.closure(set(spec.by_id[i].needs)) for i in known]
    stray = [n for n in named if not all(n in a for a in allowed)]
    return tuple(sorted(set(named) - set(ids))), stray


def _fold(req: Requirement, outcomes: list[_Outcome]) -> tuple[Verdict, str, list[Failure]]:
    """One requirement's verdict, reason and failures from the outcomes of its checks."""
    rid = req.id
    if not outcomes:
        return "skipped", "no check of it ran", []
    failures = [f for o in outcomes for f in o.failures.get(rid, []) + o.failures.get(None, [])]
    absent = [f for o in outcomes for f in o.absent.get(rid, []) + o.absent.get(None, [])]
    if not req.optional:
        # Absent is as wrong as any other way of missing a requirement that is asked for.
        failures, absent = failures + absent, []
    if failures:
        return "fail", failures[0].message, failures
    if absent:
        # A check that saw the feature absent settles it: another that could not look at it
        # has nothing to add.
        return "not_implemented", absent[0].message, []
    for o in outcomes:
        if o.status == "not_implemented" and not o.absent:
            # It did not run: a need of it is not implemented. So is it, when it is optional.
            return ("not_implemented" if req.optional else "not_run"), o.reason, []
    for o in outcomes:
        if o.status == "not_run":
            return "not_run", o.reason, []
    for o in outcomes:
        # A check that stopped at another requirement's failure (or absence) did not finish
        # checking this one; one that reported several together (complete) did.
        if o.status in ("fail", "not_implemented") and not o.complete:
            stopped = ", ".join(sorted(k for k in (*o.failures, *o.absent) if k))
            if o.status == "fail":
                return "not_run", f"its check stopped at a failure of {stopped}", []
            return "not_run", f"its check stopped: {stopped} is not implemented", []
    if any(o.status in ("pass", "fail", "not_implemented") for o in outcomes):
        return "pass", "", []
    return "skipped", outcomes[0].reason, []
