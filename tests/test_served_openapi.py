"""The OpenAPI document each FastAPI reference serves agrees with its file in `openapi/`.

Rules: the same operations (method and path), every status code the file documents is documented
by the server too (FastAPI's own extra 422 is fine), and the same path parameter names.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import yaml
from fastapi import FastAPI

from conformance._docs import operations
from conformance._spec import load_spec
from reference import crawler, server_cached, taskqueue_server

Document = dict[str, Any]


def disagreements(file: Document, served: Document) -> list[str]:
    """How the served document departs from the file; empty when they agree.

    Operations marked `x-extension: true` in the file are compared like the others: the marker
    means the assignment does not ask for them (so students are not fuzzed on them), but our
    reference is the one that documents them, so it must serve them.
    """
    want = {(o.method, o.path): o for o in operations(file)}
    have = {(o.method, o.path): o for o in operations(served)}
    problems = [f"{m.upper()} {p}: in the file, not served" for m, p in sorted(want.keys()
                                                                              - have.keys())]
    problems += [f"{m.upper()} {p}: served, not in the file" for m, p in sorted(have.keys()
                                                                               - want.keys())]
    for key in sorted(want.keys() & have.keys()):
        where = f"{key[0].upper()} {key[1]}"
        codes = set(map(str, want[key].op.get("responses", {})))
        lacking = sorted(codes - set(map(str, have[key].op.get("responses", {}))))
        if lacking:
            problems.append(f"{where}: status {', '.join(lacking)} not documented by the server")
        names = [{p["name"] for p in o.parameters if p["in"] == "path"}
                 for o in (want[key], have[key])]
        if names[0] != names[1]:
            problems.append(f"{where}: path parameters {sorted(names[1])} served, "
                            f"{sorted(names[0])} in the file")
    return problems


def served_document(app: FastAPI) -> Document:
    """GET /openapi.json from the app, in process (no lifespan, no network)."""

    async def fetch() -> Document:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reference") as client:
            answer = await client.get("/openapi.json")
            answer.raise_for_status()
            return answer.json()

    return asyncio.run(fetch())


APPS: dict[str, Callable[[], FastAPI]] = {
    "crawler": lambda: crawler.create_app(crawler.CrawlerConfig()),
    "crawler-cached": lambda: server_cached.create_app(
        server_cached.CachedConfig(crawler=crawler.CrawlerConfig()),
        client=fakeredis.FakeAsyncRedis(decode_responses=True)),
    "taskqueue": lambda: taskqueue_server.create_app(taskqueue_server.QueueConfig()),
}


def openapi_file(spec: str) -> Path:
    path = load_spec(spec).openapi
    assert path is not None, f"spec {spec} has no OpenAPI file"
    return path


def load(path: Path) -> Document:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("spec", sorted(APPS))
def test_the_reference_serves_what_its_file_documents(spec: str) -> None:
    path = openapi_file(spec)
    served = served_document(APPS[spec]())
    problems = disagreements(load(path), served)
    assert not problems, f"reference of {spec} vs openapi/{path.name}:\n" + "\n".join(problems)


# --- the comparison itself, on doctored documents ---------------------------------------------

@pytest.fixture(scope="module")
def taskqueue_file() -> Document:
    return load(openapi_file("taskqueue"))


def test_a_document_agrees_with_itself(taskqueue_file: Document) -> None:
    assert disagreements(taskqueue_file, taskqueue_file) == []


def test_extra_status_codes_served_are_fine(taskqueue_file: Document) -> None:
    served = copy.deepcopy(taskqueue_file)
    served["paths"]["/api/v1/tasks/{task_id}"]["get"]["responses"]["422"] = {"description": "x"}
    assert disagreements(taskqueue_file, served) == []


def test_a_missing_operation_is_found(taskqueue_file: Document) -> None:
    served = copy.deepcopy(taskqueue_file)
    del served["paths"]["/api/v1/tasks/{task_id}/result"]
    assert disagreements(taskqueue_file, served) == [
        "GET /api/v1/tasks/{task_id}/result: in the file, not served"]
    assert disagreements(served, taskqueue_file) == [
        "GET /api/v1/tasks/{task_id}/result: served, not in the file"]


def test_an_undocumented_status_is_found(taskqueue_file: Document) -> None:
    served = copy.deepcopy(taskqueue_file)
    del served["paths"]["/api/v1/tasks"]["post"]["responses"]["400"]
    assert disagreements(taskqueue_file, served) == [
        "POST /api/v1/tasks: status 400 not documented by the server"]


def test_a_renamed_path_parameter_is_found(taskqueue_file: Document) -> None:
    served = copy.deepcopy(taskqueue_file)
    served["paths"]["/api/v1/tasks/{task_id}"]["get"]["parameters"] = [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert disagreements(taskqueue_file, served) == [
        "GET /api/v1/tasks/{task_id}: path parameters ['id'] served, ['task_id'] in the file"]


def test_an_extension_operation_must_be_served_too() -> None:
    file = load(openapi_file("crawler-cached"))
    served = copy.deepcopy(file)
    del served["paths"]["/api/v1/domains"]
    assert disagreements(file, served) == ["GET /api/v1/domains: in the file, not served"]
