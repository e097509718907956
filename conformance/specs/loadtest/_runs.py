"""One run of a load tester against the suite's target: its command line made from the plan, the
tester started as every target is, stopped at its limit (or interrupted, for the Ctrl+C run), and
what it left: exit status, output, the summary read from it, and the target's record.

Rules: the parameters go where the command's placeholders put them (`{url}`, `{rps}`,
`{test_time}`, `{wait_timeout}`, `{config}` for a JSON file of all four), else they are appended
in the seed's order; a plan's extra words (`--json`) come last. Output goes to files, never a
pipe that could fill. A run still going at its limit is stopped (Ctrl+C, then SIGKILL to its
process group); a run given `quiet` (of a tester already seen not to end by itself) is stopped
sooner: once its own deadline is past (test time and wait after the first request came) and
it has then been still that long (nothing printed, no request sent). The target serves on a
free loopback port of the run's network and is stopped once the tester has ended, so that held
requests are never answered while the tester waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance._client_run import tail
from conformance._isolation import launched, limit_hit, target_env
from conformance._servers import Seen
from conformance._target import ProgramTarget, stop_group
from conformance.specs.loadtest._summary import Summary, parse
from conformance.specs.loadtest._target import Plan, Target

SEED_ORDER = ("url", "rps", "test_time", "wait_timeout")  # appended when no placeholder
CONFIG = "loadtest.json"
POLL = 0.05
INTERRUPT_AFTER = 1.5  # seconds after the first request: Ctrl+C (the interrupt run)
INTERRUPT_GRACE = 5.0  # seconds the tester has to end after it


def _number(value: float) -> str:
    return f"{value:g}"


def command_line(program: ProgramTarget, plan: Plan, url: str) -> list[str]:
    """The tester's argv for `plan` against `url` (see the module's rules)."""
    values = {"url": url, "rps": plan.rps_text or _number(plan.rps),
              "test_time": _number(plan.test_time), "wait_timeout": _number(plan.wait),
              "config": CONFIG}
    return program.filled(values, SEED_ORDER) + list(plan.extra)


@dataclass
class Run:
    """What one run of the tester showed, and what its target saw."""

    plan: Plan
    argv: list[str]
    url: str
    code: int | None = None  # None: stopped at its limit (or never started)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    interrupted_at: float | None = None  # seconds into the run of the Ctrl+C
    before_stop: str | None = None  # stdout when it was stopped at its limit (None: it ended)
    requests: list[Seen] = field(default_factory=list)  # what the target received
    outcomes: dict[str, int] = field(default_factory=dict)  # Target.outcomes()
    started: float = 0.0
    still: float = 0.0  # stopped after this long still past its deadline (its `quiet`), or 0

    @property
    def summary(self) -> Summary:
        """The summary read from stdout."""
        return parse(self.stdout)

    def arrivals(self) -> list[float]:
        """Seconds from the first request's arrival to each request's, in order."""
        if not self.requests:
            return []
        first = self.requests[0].at
        return [r.at - first for r in self.requests]

    def for_url(self) -> list[Seen]:
        """The requests for the URL as given (path and query)."""
        path = self.url.split("/", 3)[3]
        return [r for r in self.requests if r.path == "/" + path]

    def ending(self) -> str:
        """How the run ended, in words."""
        if self.still:
            return (f"still running after {self.seconds:.1f} s, {self.still:g} s of them past "
                    f"its deadline with nothing printed and no request sent, stopped (it had not "
                    f"ended by itself in an earlier run either)")
        if self.timed_out:
            return f"still running after {self.seconds:.1f} s, stopped"
        if self.code == 127 and not self.stdout:
            return self.stderr.strip() or "could not be started"
        what = f"ended with status {self.code} after {self.seconds:.1f} s"
        if self.interrupted_at is not None:
            what += f" (Ctrl+C at {self.interrupted_at:.1f} s)"
        return what

    def actual(self, extra: str = "") -> str:
        """What the run did, for a failure's `actual`."""
        parts = [f"the tester {self.ending()}; the target received {len(self.requests)} "
                 f"requests ({_outcomes(self.outcomes)})"]
        if extra:
            parts.append(extra)
        parts.append(f"stdout ends: {tail(self.stdout, 500)!r}")
        if self.stderr.strip():
            parts.append(f"stderr ends: {tail(self.stderr, 500)!r}")
        return "; ".join(parts)

    def reproduce(self) -> str:
        """The target to start, then the tester's command line."""
        port = self.url.split(":")[2].split("/")[0]
        return (f"python -m conformance.specs.loadtest._target {self.plan.name} --port {port}"
                f" &  # {self.plan.story}\n{shlex.join(self.argv)}")


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "none answered"


def run_plan(program: ProgramTarget, plan: Plan, *, interrupt: bool = False,
             quiet: float = 0.0) -> Run:
    """Run the tester once against a fresh target playing `plan` (`quiet`: see the module's
    rules)."""
    work = program.workdir or Path.cwd()
    with Target(plan) as target:
        run = Run(plan, command_line(program, plan, target.url), target.url)
        if any("{config}" in word for word in program.argv):
            (work / CONFIG).write_text(json.dumps({
                "url": target.url, "rps": plan.rps, "test_time": plan.test_time,
                "wait_timeout": plan.wait}), encoding="utf-8")
        with tempfile.TemporaryDirectory(prefix="conformance-loadtest-") as scratch:
            out_path, err_path = Path(scratch) / "stdout", Path(scratch) / "stderr"
            with out_path.open("wb") as out, err_path.open("wb") as err:
                run.started = time.monotonic()
                try:
                    popen = subprocess.Popen(launched(run.argv, cwd=work), stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err, start_new_session=True,
                                             env=target_env(), cwd=work)
                except OSError as exc:
                    run.code, run.stderr = 127, f"cannot start {run.argv[0]}: {exc}"
                    return run
                _wait(popen, run, target, interrupt, (out_path, err_path), quiet)
            run.seconds = time.monotonic() - run.started
            run.stdout = out_path.read_text(encoding="utf-8", errors="replace")
            run.stderr = err_path.read_text(encoding="utf-8", errors="replace")
            limit_hit(run.code, run.stdout + run.stderr)
        run.requests = target.requests()
        run.outcomes = dict(target.outcomes())
    return run


def _wait(popen: subprocess.Popen[bytes], run: Run, target: Target, interrupt: bool,
          outputs: tuple[Path, Path], quiet: float) -> None:
    out_path = outputs[0]
    deadline = run.started + run.plan.limit
    done, calm_since = (-1, -1, -1), run.started
    while popen.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL)
        if quiet:
            now, seen = time.monotonic(), target.requests()
            now_done = (len(seen), outputs[0].stat().st_size, outputs[1].stat().st_size)
            # Still only past the tester's own deadline, which its first request starts at the
            # latest: before it, a tester waiting for held answers is working.
            if now_done != done or not seen or \
                    now < seen[0].at + run.plan.test_time + run.plan.wait:
                done, calm_since = now_done, now
            elif now - calm_since >= quiet:
                run.still = quiet
                break
        if interrupt and run.interrupted_at is None:
            seen = target.requests()
            if seen and time.monotonic() - seen[0].at >= INTERRUPT_AFTER:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGINT)
                run.interrupted_at = time.monotonic() - run.started
                deadline = min(deadline, time.monotonic() + INTERRUPT_GRACE)
    if popen.poll() is None:
        run.timed_out = True
        run.before_stop = out_path.read_text(encoding="utf-8", errors="replace")
        stop_group(popen)
    run.code = None if run.timed_out else popen.returncode
