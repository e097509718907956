"""The reference `crawl.py`: submit URLs to the crawler server, wait for the task, print the codes.

Run it as `python crawl.py [--server URL] [--wait S] URL [URL ...]`. All I/O is async (asyncio
and httpx.AsyncClient), as the assignment asks. Rules, as openapi/crawl-client.requirements.yaml
states them:
- one `POST /api/v1/tasks/` to the server (http://127.0.0.1:8888 by default) whose body is the
  bare JSON list of the URLs, exactly as given and in their order; the answer (200 or 201) is a
  task object with a string `id`;
- then `GET /api/v1/tasks/{id}` after 0.1 s, and again at intervals growing by half up to 1 s,
  until the task's `status` is "ready", for at most `--wait` seconds (300 by default);
- once ready, `result` has one entry per URL; for each URL in the given order one line
  `CODE<TAB>URL` goes to stdout, `-` standing for a null code (a URL the server could not
  fetch); nothing else goes to stdout, and the exit status is 0;
- a server that cannot be reached, answers with an unexpected status or with something that is
  not the task it should be, or a task not ready in time: one line `crawl: error: ...` on
  stderr, nothing on stdout, exit status 1; a bad command line: usage on stderr, status 2;
  Ctrl+C: `crawl: interrupted` on stderr, status 130. Never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8888"
TASKS_PATH = "/api/v1/tasks/"
DEFAULT_WAIT = 300.0
REQUEST_TIMEOUT = 10.0
FIRST_INTERVAL = 0.1
MAX_INTERVAL = 1.0
GROWTH = 1.5
# The deadline bounds the wait; this bounds the number of polls too, should a subclass poll
# faster than the intervals above. The reference never comes near it (300 s is ~300 polls).
MAX_POLLS = 10_000
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

Code = int | str | None


class CrawlError(Exception):
    """The server cannot be reached or did not answer as the crawler API says; the message
    is one line, for a person."""


def excerpt(data: bytes | str, limit: int = 80) -> str:
    """The start of a body, on one line, for an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


def poll_intervals() -> Iterator[float]:
    """Seconds to wait before each poll: 0.1, 0.15, 0.225 ... then 1 s from the seventh on.

    Short at first, because a task of a few URLs is often ready in well under a second; capped,
    so a long task costs the server one request a second, not a busy loop.
    """
    interval = FIRST_INTERVAL
    while True:
        yield interval
        interval = min(interval * GROWTH, MAX_INTERVAL)


class CrawlClient:
    """Talks to one crawler server over an open httpx.AsyncClient: creates a task, waits for it,
    and turns its result into the lines to print. Each step is a method, so a variant (see
    fixtures/crawl_client) can change one of them and keep the rest."""

    def __init__(self, http: httpx.AsyncClient, *, wait: float = DEFAULT_WAIT) -> None:
        self.http = http
        self.wait = wait

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; every transport problem becomes a one-line CrawlError."""
        where = str(self.http.base_url).rstrip("/") + path
        try:
            return await self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise CrawlError(f"cannot connect to the crawler server at {where} "
                             f"(is it running?): {exc or 'connection failed'}") from None
        except httpx.TimeoutException:
            raise CrawlError(f"the crawler server did not answer {method} {where} within "
                             f"{REQUEST_TIMEOUT:g} s") from None
        except httpx.HTTPError as exc:
            raise CrawlError(f"{method} {where} failed: {exc or type(exc).__name__}") from None

    @staticmethod
    def read_task(response: httpx.Response, expected: tuple[int, ...]) -> dict[str, Any]:
        """The task object an answer carries, or CrawlError saying what is wrong with it."""
        what = f"{response.request.method} {response.request.url.path}"
        if response.status_code not in expected:
            raise CrawlError(f"{what} answered {response.status_code} "
                             f"{response.reason_phrase}: {excerpt(response.content)}")
        try:
            task = response.json()
        except ValueError:
            raise CrawlError(f"{what} answered something that is not JSON: "
                             f"{excerpt(response.content)}") from None
        if not isinstance(task, dict) or not isinstance(task.get("id"), str) or not task["id"]:
            raise CrawlError(f"{what} answered JSON that is not a task with an id: "
                             f"{excerpt(response.text)}")
        return task

    async def submit(self, urls: Sequence[str]) -> dict[str, Any]:
        """Create the task: POST the bare JSON list of the URLs, as given and in order."""
        response = await self.send("POST", TASKS_PATH, json=list(urls))
        # 201 is what the crawler API answers; 200 is accepted too, as the task is all we need.
        return self.read_task(response, expected=(200, 201))

    def intervals(self) -> Iterator[float]:
        """Seconds to wait before each poll."""
        return poll_intervals()

    async def wait_ready(self, task_id: str, count: int) -> list[Code]:
        """Poll the task until it is ready and return its result, one entry per URL."""
        path = TASKS_PATH + quote(task_id, safe="")
        deadline = time.monotonic() + self.wait
        status: object = None
        for _, interval in zip(range(MAX_POLLS), self.intervals(), strict=False):
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))
            task = self.read_task(await self.send("GET", path), expected=(200,))
            status = task.get("status")
            if not isinstance(status, str):
                raise CrawlError(f"GET {path} answered a task with no status: "
                                 f"{excerpt(repr(task))}")
            if status == "ready":
                return self.result_of(task, count)
            # Any other status ("running", or a server's own "queued") means: not yet.
            if time.monotonic() >= deadline:
                break
        raise CrawlError(f"task {task_id} was not ready after {self.wait:g} s "
                         f"(its status is still {status!r})")

    @staticmethod
    def result_of(task: dict[str, Any], count: int) -> list[Code]:
        """A ready task's result, checked: one integer code (or null, or a short word) per URL."""
        result = task.get("result")
        if not isinstance(result, list) or len(result) != count:
            raise CrawlError(f"the ready task's result should list {count} codes, one per URL, "
                             f"but it is {excerpt(repr(result))}")
        for code in result:
            # A code is printed in a tab-separated line, so it must be one word.
            word = isinstance(code, str) and code and not any(c.isspace() for c in code)
            if not (code is None or word or (isinstance(code, int)
                                             and not isinstance(code, bool))):
                raise CrawlError(f"the ready task's result holds {code!r}, not a status code")
        return result

    async def crawl(self, urls: Sequence[str]) -> list[Code]:
        """Submit the URLs and wait for their codes."""
        task = await self.submit(urls)
        return await self.wait_ready(task["id"], len(urls))

    @staticmethod
    def line(code: Code, url: str) -> str:
        """`CODE<TAB>URL`; a null code (the server could not fetch the URL) is `-`."""
        return f"{'-' if code is None else code}\t{url}"

    def lines(self, urls: Sequence[str], codes: Sequence[Code]) -> list[str]:
        """The lines to print, one per URL in the given order."""
        return [self.line(code, url) for url, code in zip(urls, codes, strict=True)]


async def run(urls: Sequence[str], server: str = DEFAULT_SERVER, wait: float = DEFAULT_WAIT,
              client_class: type[CrawlClient] = CrawlClient) -> list[str]:
    """Crawl `urls` through the server at `server`; the lines to print."""
    # trust_env=False: the server is a known address (loopback by default), and a proxy from
    # the environment would only stand between this client and it.
    async with httpx.AsyncClient(base_url=server, timeout=REQUEST_TIMEOUT,
                                 trust_env=False) as http:
        client = client_class(http, wait=wait)
        return client.lines(urls, await client.crawl(urls))


def _server_url(text: str) -> str:
    url = httpx.URL(text)
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: `crawl.py [--server URL] [--wait S] URL [URL ...]`."""
    parser = argparse.ArgumentParser(
        prog="crawl.py",
        description="Have the crawler server fetch the URLs; print each one's HTTP status code "
                    "and the URL, separated by a tab, in the order given ('-': not fetched).",
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="a URL for the server to fetch")
    parser.add_argument("--server", type=_server_url, default=DEFAULT_SERVER, metavar="URL",
                        help="the crawler server (default: %(default)s)")
    parser.add_argument("--wait", type=_seconds, default=DEFAULT_WAIT, metavar="S",
                        help="give up when the task is not ready after S seconds "
                             "(default: %(default)g)")
    return parser


def main(argv: Sequence[str] | None = None,
         client_class: type[CrawlClient] = CrawlClient) -> int:
    """Parse the command line, crawl, print; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        lines = asyncio.run(run(args.urls, args.server, args.wait, client_class))
    except CrawlError as exc:
        print(f"crawl: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        # asyncio.run has cancelled the pending request or sleep; nothing was printed yet.
        print("crawl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
