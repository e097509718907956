"""Checks of the `crawler` spec (openapi/crawler.requirements.yaml) against any server by URL.

Every URL a check submits is a page of the suite's own fixture web (loopback, or the address
given with --fixture-host), under a token of its own, so what the server really fetched, when
and how, is observed from outside. The suite talks to the task API through the shape it
discovered (_task_api.py): a server that deviates from the assignment's shape fails
that one requirement and is judged on the rest through its own.

A check judges on its own evidence (fixtures.py's rules): the checks whose evidence is what one
host gets, or whose task outlives them, have a fixture host of their own (`own_web`), and the
checks that load the server (`@makes_load`) come after every judgement, the last of them here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from conformance._checks import CheckFailure, NotRun, requirement
from conformance._fuzz import fuzz_check
from conformance._http import NO_ANSWER, Exchange, Http, curl_line
from conformance._options import RunOptions, SpecOptions
from conformance._spec import Spec
from conformance._target import free_port
from conformance.specs.crawler._task_api import (
    CANONICAL_PATH,
    POLL_PATHS,
    SUBMITS,
    Api,
    Created,
    Discovery,
    random_task_id,
    unknown_task_id,
)
from conformance.specs.crawler._web import FixtureWeb
from conformance.specs.crawler.fixtures import (
    READY_WITHIN,
    SETTLE_WITHIN,
    UNREACHABLE_WITHIN,
    makes_load,
    run_task,
    served,
    submitted,
)


def _task_body(ex: Exchange) -> Any:
    try:
        return ex.json()
    except ValueError:
        return None


# MUST ---------------------------------------------------------------------------------------

@requirement("CRAWL-01")
def test_server_answers_http(http: Http) -> None:
    """The server answers an HTTP request."""
    http.get(POLL_PATHS[0].format(id=random_task_id()))


@requirement("CRAWL-02")
def test_task_is_created_from_a_bare_list(discovery: Discovery) -> None:
    """POST /api/v1/tasks/ with a bare JSON list creates a task."""
    if discovery.api is None:
        raise CheckFailure("no way of creating a task worked: " + discovery.explain(),
                           expected="2xx and a task object for a bare JSON list of URLs",
                           actual=discovery.explain(), reproduce=_first_reproducer(discovery))
    if not discovery.api.canonical_submit:
        raise CheckFailure(
            "POST body: the assignment asks for a bare JSON list to /api/v1/tasks/; this server "
            "answered " + discovery.explain(),
            expected="a task created from a bare JSON list at /api/v1/tasks/",
            actual=f"a task created only from {discovery.api.submit.label}",
            reproduce=_first_reproducer(discovery))


@requirement("CRAWL-03")
def test_creating_a_task_answers_201(api: Api, web: FixtureWeb) -> None:
    """Creating a task answers 201 Created."""
    created = api.create([web.url(web.token() + "/status/200")])
    if created.exchange.status != 201:
        ex = created.exchange
        raise CheckFailure(f"{ex.request_line} answered {ex.status}, expected 201",
                           expected="201 Created", actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-04")
def test_new_task_is_running(api: Api, web: FixtureWeb) -> None:
    """The new task is a JSON object with status "running"."""
    created = api.create([web.url(web.token() + "/delay/1/status/200")])
    ex = created.exchange
    bodies = created.body if api.per_url else [created.body]
    for body in bodies:
        status = body.get("status") if isinstance(body, dict) else None
        if status != "running":
            raise CheckFailure(
                f'{ex.request_line}: the new task\'s status is {status!r}; the assignment says '
                f'"running"', expected='a task object with "status": "running"',
                actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-05")
def test_task_id_is_a_uuid4(api: Api, web: FixtureWeb) -> None:
    """The task's id is a UUID4 string, in its `id`."""
    created = api.create([web.url(web.token() + "/status/200")])
    if api.id_field != "id":
        ex = created.exchange
        raise CheckFailure(f'{ex.request_line}: the task object has no "id"; its id is in '
                           f'"{api.id_field}" (the member whose value names the task in GET)',
                           expected='a task object with "id": a UUID4', actual=ex.summary(),
                           reproduce=ex.curl())
    for task_id in created.ids:
        try:
            parsed = uuid.UUID(task_id) if isinstance(task_id, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.version != 4:
            ex = created.exchange
            what = "not a UUID" if parsed is None else f"a UUID of version {parsed.version}"
            raise CheckFailure(f"{ex.request_line}: the id {task_id!r} is {what}",
                               expected="an id such as 1b4e28ba-2fa1-4d2e-8c7a-3f1e2d3c4b5a",
                               actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-06")
def test_task_becomes_ready(api: Api, web: FixtureWeb) -> None:
    """GET /api/v1/tasks/{id} shows the task, while it runs too, and it becomes "ready"."""
    path = web.token() + "/delay/1/status/200"
    created = api.create([web.url(path)])
    # Asked at once, while the page takes its second (unless the POST waited for it): a task
    # that is running is shown as running, not hidden until it is ready.
    fetching = not any(h.finished is not None for h in web.hits(path))
    first = api.poll(created.ids[0])
    body = _task_body(first)
    if fetching and (first.status != 200 or not isinstance(body, dict)):
        raise CheckFailure(
            f"while the task ran, {first.request_line} answered {first.status}: the task is "
            f"not shown while it runs", expected="200 and the task object, running",
            actual=first.summary(), reproduce=f"{created.exchange.curl()}\n{first.curl()}")
    ready = api.wait_ready(created, READY_WITHIN)
    ex = ready.exchanges[-1]
    if api.poll_path != POLL_PATHS[0]:
        raise CheckFailure(f"the task is shown at {api.poll_path}, not /api/v1/tasks/{{id}}",
                           expected="GET /api/v1/tasks/{id} answers 200", actual=ex.summary(),
                           reproduce=ex.curl())
    if ready.status != "ready":
        raise CheckFailure(f'the finished task\'s status is {ready.status!r}; the assignment '
                           f'says "ready"', expected='"status": "ready"', actual=ex.summary(),
                           reproduce=ex.curl())


@requirement("CRAWL-12")
def test_task_with_unreachable_urls_is_created(api: Api, own_web: FixtureWeb,
                                               started: dict[str, tuple[Created, float]]) -> None:
    """A task with refused, reset and closed URLs is created (and judged last).

    Created as soon as tasks are known to become ready (CRAWL-06), so a server that leaves it
    running for good costs the run its waiting alongside the other checks; on a host of its own,
    so that what it keeps trying there is no other check's business."""
    web = own_web
    token = web.token()
    refused = f"http://{web.url_host}:{free_port()}/nothing"
    urls = [refused, web.url(f"{token}/reset"), web.url(f"{token}/close"),
            web.url(f"{token}/status/200")]
    started["unreachable"] = (api.create(urls), time.monotonic())


@requirement("CRAWL-07")
def test_result_is_a_list_in_submission_order(api: Api, web: FixtureWeb) -> None:
    """The ready task's result lists one code per URL, in submission order."""
    token = web.token()
    urls, expected = served(web, token)
    _, ready = run_task(api, urls)
    ex = ready.exchanges[-1]
    if (ready.field, ready.form) != ("result", "a list"):
        raise CheckFailure(
            f'the codes are in "{ready.field}" as {ready.form}; the assignment asks for '
            f'"result", a list in submission order', expected=f'"result": {expected}',
            actual=ex.summary(), reproduce=ex.curl())
    if len(ready.codes) != len(urls):
        raise CheckFailure(f"result has {len(ready.codes)} entries for {len(urls)} URLs",
                           expected=f'"result": {expected}', actual=ex.summary(),
                           reproduce=ex.curl())
    if ready.codes != expected:
        finished = [h.path for h in sorted(web.hits(token), key=lambda h: h.finished or 0)]
        completion = [int(p.rsplit("/", 1)[1]) for p in finished if "/status/" in p]
        hint = " (the order the fetches finished in)" if ready.codes == completion else ""
        raise CheckFailure(f"result is {ready.codes}{hint}, expected {expected} (the order "
                           f"the URLs were submitted in)", expected=f'"result": {expected}',
                           actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-08")
def test_codes_are_what_the_urls_answered(api: Api, web: FixtureWeb) -> None:
    """Each code is the status its URL answered."""
    urls, expected = served(web, web.token())
    _, ready = run_task(api, urls)
    got = ready.codes if ready.form != "a list" else sorted(ready.codes, key=repr)
    want = expected if ready.form != "a list" else sorted(expected, key=repr)
    if got != want:
        ex = ready.exchanges[-1]
        raise CheckFailure(f"the codes are {ready.codes}; the URLs answered {expected}",
                           expected=f"the codes {expected}", actual=ex.summary(),
                           reproduce=ex.curl())


@requirement("CRAWL-09")
def test_every_url_is_fetched_with_get(api: Api, web: FixtureWeb) -> None:
    """The fixture web sees a GET for every submitted URL."""
    token = web.token()
    paths = [f"{token}/status/{c}" for c in (200, 404, 503)]
    created, _ = run_task(api, [web.url(p) for p in paths])
    for path in paths:
        if web.count(path, method="GET") == 0:
            seen = [h.method for h in web.hits(path)]
            raise CheckFailure(f"{web.url(path)} was never requested with GET",
                               expected="one GET request",
                               actual=f"requests seen: {seen or 'none'}",
                               reproduce=submitted(web, created))


@requirement("CRAWL-10")
def test_urls_of_a_task_are_fetched_concurrently(api: Api, own_web: FixtureWeb,
                                                 note: Callable[[str], None]) -> None:
    """Five URLs that take a second each are in flight at the same time (on a host of their
    own: a crawler's limit per host is then theirs alone)."""
    web = own_web
    token = web.token()
    urls = [web.url(f"{token}/delay/1/status/200?n={i}") for i in range(5)]
    created, ready = run_task(api, urls)
    overlap = web.max_in_flight(token)
    note(f"5 URLs of 1 s each: ready after {ready.seconds:.1f} s, {overlap} in flight at once")
    if overlap < 2:
        raise CheckFailure(
            f"the five slow URLs were fetched one after another (ready after "
            f"{ready.seconds:.1f} s)", expected="several of the five in flight at once",
            actual=f"at most {overlap} in flight at once", reproduce=submitted(web, created))


@requirement("CRAWL-11")
def test_server_answers_while_crawling(api: Api, web: FixtureWeb,
                                       note: Callable[[str], None]) -> None:
    """A status request answers within a second while a slow URL is being fetched: the task
    is sent in the background, so a POST that does the crawl itself is asked while it does."""
    token = web.token()
    known = api.create([web.url(f"{token}/status/200")])  # a task to ask about meanwhile
    slow = f"{token}/delay/3/status/200"
    pending = api.create_soon([web.url(slow)])
    try:
        deadline = time.monotonic() + 5
        while not web.hits(slow):
            if time.monotonic() > deadline:
                raise NotRun("the server did not request the slow URL within 5 s")
            time.sleep(0.02)
        t0 = time.monotonic()
        try:
            ex = api.poll(known.ids[0], timeout=2.5)
        except CheckFailure as exc:
            raise CheckFailure(f"while the server fetched a slow URL, {exc.message}",
                               expected="an answer within 1 s", actual=exc.actual,
                               reproduce=f"{_pending_curl(api, web.url(slow))} &\n"
                                         f"{exc.reproduce}") from None
        took = time.monotonic() - t0
        if took > 1.0:
            raise CheckFailure(f"while the server fetched a slow URL, a status request took "
                               f"{took:.1f} s", expected="an answer within 1 s",
                               actual=f"{took:.1f} s: {ex.summary()}",
                               reproduce=f"{_pending_curl(api, web.url(slow))} &\n{ex.curl()}")
    finally:
        # The slow task's own answer: not this check's business, but not left behind either.
        try:
            pending.result()
        except CheckFailure as exc:
            note(f"the POST of the slow task got no answer: {exc.message}")


def _pending_curl(api: Api, url: str) -> str:
    """The curl line of the POST that creates a task for `url` through the shape found."""
    return curl_line("POST", api.http.url(api.submit.path),
                     {"Content-Type": "application/json"},
                     json.dumps(api.submit.body([url])).encode(), api.http.timeout)


# SHOULD -------------------------------------------------------------------------------------

@requirement("CRAWL-13")
def test_unreachable_url_gets_null(api: Api, web: FixtureWeb, note: Callable[[str], None]) -> None:
    """The entry of a URL that gave no answer is null."""
    urls = [f"http://{web.url_host}:{free_port()}/nothing", web.url(web.token() + "/reset")]
    _, ready = run_task(api, urls, limit=UNREACHABLE_WITHIN)
    got = f"{ready.codes}" + (f", {len(ready.missing)} left out" if ready.missing else "")
    note(f"unreachable URLs got {got}")
    if ready.codes != [None, None]:
        ex = ready.exchanges[-1]
        raise CheckFailure(f"unreachable URLs got {got}", expected="[null, null]",
                           actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-14")
def test_redirect_is_reported_not_followed(api: Api, web: FixtureWeb,
                                           note: Callable[[str], None]) -> None:
    """A URL that redirects is reported with its 3xx code."""
    urls = [web.url(web.token() + f"/redirect/{c}") for c in (301, 302)]
    _, ready = run_task(api, urls)
    note(f"redirects got {ready.codes}")
    if ready.codes != [301, 302]:
        ex = ready.exchanges[-1]
        raise CheckFailure(f"redirecting URLs got {ready.codes}", expected="[301, 302]",
                           actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-15")
def test_unknown_task_is_404(api: Api, http: Http) -> None:
    """An id that names no task gets 404: a well-formed one (of the form the server gives
    out) that nobody created, so a route typed for its ids is asked about a task, not about
    the id's form."""
    ex = http.get(api.poll_path.format(id=unknown_task_id(api)))
    if ex.status != 404:
        raise CheckFailure(f"{ex.request_line} (an id nobody created) answered {ex.status}",
                           expected="404", actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-16")
def test_bad_bodies_get_422(http: Http, discovery: Discovery) -> None:
    """Bodies that are not a non-empty list of URL strings get 422: sent in the shape the
    server takes (its path, its list under its key), so what is judged is the list."""
    submit = discovery.api.submit if discovery.api else SUBMITS[0]
    bad: list[Any] = [{"x": 1}, "http://127.0.0.1/", [1, 2], []]
    raws = [json.dumps(submit.body(value)).encode() for value in bad] + [b"not json"]
    for raw in raws:
        ex = http.request("POST", submit.path, content=raw,
                          headers={"Content-Type": "application/json"})
        if ex.status != 422:
            raise CheckFailure(f"{ex.request_line} with body {raw.decode()} answered {ex.status}",
                               expected="422", actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-17")
def test_result_is_null_while_running(api: Api, web: FixtureWeb) -> None:
    """A running task's result is null or absent: in the POST's answer, and in GET's while the
    first URL takes its two seconds (a partial list shows there, as fetches end; a POST's
    answer, made before any did, is no evidence that it does not)."""
    created = api.create([web.url(web.token() + "/delay/2/status/200"),
                          web.url(web.token() + "/status/200")])
    time.sleep(0.3)
    ex = api.poll(created.ids[0])
    posted = [(created.exchange, b) for b in (created.body if api.per_url else [created.body])]
    polled = [(ex, _task_body(ex))] if ex.status == 200 else []  # an error's body is no task
    for exchange, body in posted + polled:
        if isinstance(body, dict) and not api.is_ready(body):
            value = next((body[f] for f in ("result", "results") if f in body), None)
            if value not in (None, []):
                raise CheckFailure(f"while running, the result is {value!r}",
                                   expected="null or absent", actual=exchange.summary(),
                                   reproduce=exchange.curl())
    if not any(isinstance(b, dict) and not api.is_ready(b) for _, b in polled):
        raise NotRun(f"GET showed no running task to look at, 0.3 s after it was created (its "
                     f"first URL takes 2 s): {ex.request_line} answered {ex.summary(80)}")


@requirement("CRAWL-18")
def test_scheme_less_url_is_fetched_as_http(api: Api, web: FixtureWeb) -> None:
    """A URL without a scheme is fetched as http://."""
    path = web.token() + "/status/203"
    bare = web.url(path).removeprefix("http://")
    _, ready = run_task(api, [bare])
    # Any method counts here: the method is CRAWL-09's business, the scheme this one's.
    if ready.codes != [203] or web.count(path, method=None) == 0:
        ex = ready.exchanges[-1]
        raise CheckFailure(f"{bare} got {ready.codes}", expected="[203], fetched as http://",
                           actual=ex.summary(), reproduce=ex.curl())


@requirement("CRAWL-19")
def test_each_url_is_requested_once(api: Api, web: FixtureWeb) -> None:
    """Each URL of a task is requested exactly once."""
    token = web.token()
    paths = [f"{token}/status/{c}" for c in (200, 404)]
    created, _ = run_task(api, [web.url(p) for p in paths])
    time.sleep(0.2)
    for path in paths:
        seen = [h.method for h in web.hits(path) if h.path == path]
        if len(seen) != 1:
            raise CheckFailure(f"{web.url(path)} was requested {len(seen)} times: {seen}",
                               expected="one GET", actual=str(seen),
                               reproduce=submitted(web, created))


# Judged last ---------------------------------------------------------------------------------
# Tasks started above, given the whole run to become ready: a server whose task never does
# costs the run its waiting once, alongside the other checks, not on top of them.

@requirement("CRAWL-12")
def test_unreachable_urls_do_not_stop_the_task(
        api: Api, started: dict[str, tuple[Created, float]]) -> None:
    """A task with refused and reset URLs still becomes ready, one entry per URL."""
    if "unreachable" not in started:
        raise NotRun("the task with unreachable URLs was not created")
    created, at = started["unreachable"]
    ready = api.wait_ready(created, UNREACHABLE_WITHIN, since=at)
    if ready.missing:
        ex = ready.exchanges[-1]
        raise CheckFailure(f"the result leaves out {len(ready.missing)} of the "
                           f"{len(created.urls)} URLs: {', '.join(ready.missing)}",
                           expected=f"an entry for each of the {len(created.urls)} URLs",
                           actual=ex.summary(), reproduce=ex.curl())
    if len(ready.codes) != len(created.urls):
        ex = ready.exchanges[-1]
        raise CheckFailure(f"result has {len(ready.codes)} entries for {len(created.urls)} URLs",
                           expected=f"{len(created.urls)} entries", actual=ex.summary(),
                           reproduce=ex.curl())


# Load, after every judgement ---------------------------------------------------------------
# Fuzzing and the 1,000-URL task keep a server busy, and a busy server answers slowly: they
# come after every other check (of this spec and of any that extends it), each on a host of its
# own; what fuzzing leaves running is waited out before the 1,000-URL task, the last of all.

@makes_load
@requirement("CRAWL-20", "CRAWL-21")
def test_fuzzed_requests(http: Http, spec: Spec, options: RunOptions[SpecOptions],
                         discovery: Discovery, own_web: FixtureWeb,
                         note: Callable[[str], None]) -> None:
    """Generated requests get no 5xx and answers as openapi/crawler.yaml documents, sent
    through the shape found (its path, its body, its id), so a server that deviates in one of
    them is fuzzed on everything else rather than refused every time."""
    web = own_web
    token = web.token()
    pages = [web.url(f"{token}/status/{c}") for c in (200, 404, 500)]
    api = discovery.api

    def adjust(document: dict[str, Any]) -> None:
        url_list = document["components"]["schemas"]["UrlList"]
        # Generated URLs must never leave the fixture web.
        url_list["items"] = {"enum": pages}
        url_list["maxItems"] = 5
        url_list.pop("examples", None)
        if api is not None:
            _through(document, api)

    assert spec.openapi is not None
    if api is not None and not api.canonical_submit:
        note(f"fuzzed through the shape found: {api.submit.label}")
    try:
        report = fuzz_check(http, spec.openapi, no_server_error="CRAWL-20",
                            matches_spec="CRAWL-21", seed=options.seed,
                            max_examples=options.fuzz_examples, seconds=options.fuzz_seconds,
                            adjust=adjust, max_rate=options.max_rate)
        note(f"fuzzing sent {report.sent} requests in {report.seconds:.1f} s "
             f"(seed {options.seed})")
    finally:
        if not web.hits(token):
            # Its answers are judged all the same; the report says what they were judged on.
            why = ("no way of creating a task was found, so it sent the documented shape"
                   if api is None else f"it sent {api.submit.label}")
            note(f"fuzzing reached no crawl: no task it created fetched a page ({why}); "
                 f"its verdicts rest on the answers to requests that created nothing")
        # The tasks fuzzing created are still fetching: let them end before the next check.
        elif web.settle(token, SETTLE_WITHIN) is None:
            note(f"the tasks fuzzing created were still fetching {SETTLE_WITHIN:g} s after it "
                 f"ended; the next check ran all the same")


def _through(document: dict[str, Any], api: Api) -> None:
    """Make the OpenAPI document speak the shape the server was found to take: its POST path
    and body, its poll path, and the member of the id that links POST to GET."""
    tasks, task = CANONICAL_PATH, POLL_PATHS[0].format(id="{task_id}")
    renamed = {tasks: api.submit.path, task: api.poll_path.format(id="{task_id}")}
    document["paths"] = {renamed.get(p, p): item for p, item in document["paths"].items()}
    create = document["paths"][api.submit.path]["post"]
    if api.submit.key or api.submit.item_key:
        body = create["requestBody"]["content"]["application/json"]
        body["schema"] = api.submit.schema(document["components"]["schemas"]["UrlList"])
    pointer = api.id_field.replace("~", "~0").replace("/", "~1")
    for link in create["responses"]["201"].get("links", {}).values():
        link["parameters"] = {name: f"$response.body#/{pointer}" for name in link["parameters"]}


@makes_load
@requirement("CRAWL-22")
def test_large_task_is_accepted_or_refused(api: Api, own_web: FixtureWeb,
                                           note: Callable[[str], None]) -> None:
    """A task of 1,000 URLs is done in full, or refused with a 4xx."""
    web = own_web
    token = web.token()
    urls = [web.url(f"{token}/status/200?n={i}") for i in range(1000)]
    try:
        created = api.create(urls)
    except CheckFailure as exc:
        if exc.actual[:1] == "4":  # the summary starts with the status
            note(f"1,000 URLs: refused ({exc.actual[:3]})")
            return
        raise
    try:
        ready = api.wait_ready(created, 60)
    except CheckFailure as exc:
        # The last check of all: what it leaves running disturbs no judgement, and is said.
        fetched = len({h.path for h in web.hits(token)})
        note(f"1,000 URLs: {fetched} of them requested when the check ended, the task still "
             f"running")
        if exc.expected == NO_ANSWER:  # a status request got no answer
            raise CheckFailure(f"while it crawled 1,000 URLs, the server did not answer: "
                               f"{exc.message}", expected="an answer to every status request, "
                               "and the task ready with 1,000 entries", actual=exc.actual,
                               reproduce=submitted(web, created)) from None
        raise
    if len(ready.codes) != 1000 or set(ready.codes) != {200}:
        kinds = sorted(set(map(repr, ready.codes)))
        raise CheckFailure(f"1,000 URLs gave {len(ready.codes)} entries",
                           expected="1,000 entries of 200",
                           actual=f"{len(ready.codes)} entries: {kinds}",
                           reproduce=submitted(web, created))
    note(f"1,000 URLs: ready after {ready.seconds:.1f} s")


def _first_reproducer(discovery: Discovery) -> str:
    for _, outcome in discovery.attempts:
        return outcome.curl() if isinstance(outcome, Exchange) else outcome.reproduce
    return ""
