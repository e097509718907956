"""The site a load tester is pointed at, played by the suite: each run's plan (rate, test seconds,
wait timeout, and how the target answers the i-th request to arrive) and the scripted server
that records when every request arrived and which answers it delivered.

Rules: a plan is data, a function of its name alone, so a failure's reproducer makes the same
target (`python -m conformance.specs.loadtest._target PLAN --port N` serves one until Ctrl+C,
then says what it saw). Answers are keyed to arrival order, not to anything the tester sends:
any tester's i-th request gets the same answer. A request is recorded when its head has been
read; an answer counts as delivered when the tester's connection was still open as it went out.
A held request is answered only when the target stops; a reset closes the connection with
SO_LINGER 0 (an RST) as soon as the request has arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from conformance._servers import AiohttpServer

PATH = "/load/target?run=1&q=a%20b"  # a path and a query the tester must send as given


class Fault(Enum):
    """An answer that is not one: the connection reset, or no answer at all."""

    RESET = "reset"
    HOLD = "hold"


@dataclass(frozen=True)
class Reply:
    """An answer: its status after `delay` seconds."""

    status: int = 200
    delay: float = 0.0


Answer = Reply | Fault


def _steady_delays(count: int = 200) -> list[float]:
    """Delays from 5 ms to 500 ms rising exponentially with their rank (percentiles well apart
    and none on a cliff), in a fixed shuffled order."""
    delays = [0.005 * 100 ** (rank / (count - 1)) for rank in range(count)]
    random.Random(19).shuffle(delays)
    return delays


STEADY_DELAYS = _steady_delays()
ERRORS = (200, 200, 404, 200, 500, 200, 200, 200, 200, 500)  # every ten requests' statuses


@dataclass(frozen=True)
class Plan:
    """One run of the tester: its parameters, and the target's answer to the i-th request."""

    name: str
    rps: int
    test_time: float
    wait: float
    answer: Callable[[int], Answer]
    story: str  # what the target does, for a reproducer
    extra: tuple[str, ...] = ()  # words added to the tester's command line
    rps_text: str | None = None  # the rate as given, when it is no number

    @property
    def count(self) -> int:
        """The requests the run must send: RPS x test seconds."""
        return round(self.rps * self.test_time)

    @property
    def limit(self) -> float:
        """Seconds the run may take before it is stopped."""
        return self.test_time + self.wait + SLACK


SLACK = 5.0  # seconds past test time + wait timeout: a Python start on a busy machine, and more




PLANS: dict[str, Plan] = {plan.name: plan for plan in (
    Plan("steady", 100, 2, 2,
         lambda i: Reply(200, STEADY_DELAYS[i] if i < len(STEADY_DELAYS) else 0.005),
         "every request answered 200 after a delay from 5 ms to 500 ms (200 known values, "
         "in a fixed order)"),
    Plan("slow", 100, 2, 3.5, lambda i: Reply(200, 2.5),
         "every request answered 200 after 2.5 s"),
    Plan("errors", 50, 2, 1, lambda i: Reply(ERRORS[i % len(ERRORS)], 0.01),
         "of every ten requests, by arrival, seven answered 200, one 404 and two 500, after "
         "10 ms"),
    Plan("holds", 50, 1, 1, lambda i: Fault.HOLD if i % 5 == 4 else Reply(200, 0.01),
         "every fifth request never answered, the others answered 200 after 10 ms"),
    Plan("resets", 50, 1, 1,
         lambda i: Fault.RESET if i % 5 == 4 else Reply(200, 0.01),
         "every fifth request's connection reset, the others answered 200 after 10 ms"),
    Plan("json", 20, 1, 1, lambda i: Reply(200, 0.01), "every request answered 200 after 10 ms",
         extra=("--json",)),
    Plan("usage", 20, 1, 1, lambda i: Reply(200, 0.01), "every request answered 200 after 10 ms",
         rps_text="fast"),
    Plan("interrupt", 20, 30, 1, lambda i: Reply(200, 0.01),
         "every request answered 200 after 10 ms"),
)}


class Target(AiohttpServer):
    """The scripted site: answers the i-th request to arrive (any path) as `plan.answer(i)`."""

    def __init__(self, plan: Plan, port: int = 0) -> None:
        super().__init__(port)
        self.plan = plan
        self._arrivals = 0

    @property
    def url(self) -> str:
        """The URL the tester is given."""
        return self.base_url + PATH

    def _app(self) -> web.Application:
        self._arrivals = 0
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        # Counted before the first await: the recording middleware awaits nothing between its
        # record and this call for a request without a body (a load tester's GET), so the
        # count is the request's place in requests().
        index, self._arrivals = self._arrivals, self._arrivals + 1
        answer = self.plan.answer(index)
        if answer is Fault.HOLD:
            await self._stopping.wait()
            return web.Response(status=503)
        if answer is Fault.RESET:
            self._reset(request)
            return web.Response(status=503)  # written nowhere: the connection is gone
        assert isinstance(answer, Reply)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, text="ok\n")

    def _reset(self, request: web.Request) -> None:
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def outcomes(self) -> Counter[str]:
        """What the target did with the requests of the run so far: `200`, `404`, `500`
        (answers delivered), `reset`, `held`, `undelivered` (answered after the tester left)."""
        out: Counter[str] = Counter()
        for index, seen in enumerate(self.requests()):
            answer = self.plan.answer(index)
            if isinstance(answer, Fault):
                out["reset" if answer is Fault.RESET else "held"] += 1
            elif seen.status is not None:
                out[str(seen.status)] += 1
            else:
                out["undelivered"] += 1
        return out


def main(argv: list[str] | None = None) -> int:
    """Serve one plan's target until Ctrl+C, then say what it saw."""
    parser = argparse.ArgumentParser(
        prog="python -m conformance.specs.loadtest._target",
        description="The load tester suite's target: serve one run's script on 127.0.0.1.")
    parser.add_argument("plan", choices=sorted(PLANS))
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    plan = PLANS[args.plan]
    with Target(plan, args.port) as target:
        print(f"{plan.name}: {plan.story}; give the tester {target.url} {plan.rps} "
              f"{plan.test_time:g} {plan.wait:g}; Ctrl+C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    print(f"{len(target.requests())} requests arrived: {dict(target.outcomes())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
