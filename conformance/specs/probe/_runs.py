"""One run of a prober under the box: the list written as `domains.csv` in the program's working
folder, the program started under the box (its resolver and CA), its end awaited within a time
limit, and what it left: exit status, output, `domain_status` read as JSON (or why not), the
time window of its requests, and the file as it was while the slowest hosts still held their
connections (for the MAY of writing records as they come).

Rules: the program is started as every target is (the launcher, `target_env()`, the run's
working folder), under the box's binds; its output goes to files (never a pipe that could fill);
a program still running at its limit is stopped (Ctrl+C, then SIGKILL to its process group), and
what it wrote is judged as far as it can be.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance._box import Box
from conformance._isolation import limit_hit, target_env
from conformance._target import ProgramTarget, stop_group

OUTPUT = "domain_status"
LIST = "domains.csv"
POLL = 0.1
SETTLE = 1.0  # seconds past the resolver's timeout without a new request or DNS query


@dataclass
class Run:
    """What one run of the program showed."""

    argv: list[str]
    code: int | None = None  # None: stopped at its limit (or never started)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    limit: float = 0.0
    timed_out: bool = False
    settled: bool = False  # stopped early: it had shown what the run was for (`settle`)
    open_peak: int = 0  # most connections the program held established at once (sampled)
    started: float = 0.0  # time.monotonic() bounds of the run, to tell its requests
    ended: float = 0.0
    output: str | None = None  # the text of domain_status (None: no such file)
    records: list[Any] | None = None  # parsed, when a JSON list
    problem: str = ""  # why `records` is None
    early: str | None = None  # domain_status while the slowest hosts held their connections
    early_at: float = 0.0  # seconds into the run of that look
    drops: str = ""  # packets the run's network dropped for want of room, in words
    dropped: int = 0  # how many
    extra: dict[str, Any] = field(default_factory=dict)

    def last_line(self) -> str:
        """The last line of its stderr (or stdout), for a reason."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1][:300] if lines else "(no output)"

    def ending(self) -> str:
        """How it ended, in words."""
        if self.settled:
            return (f"stopped after {self.seconds:.1f} s, once no new request or DNS query "
                    f"had come for {self.extra.get('quiet', 0):g} s")
        if self.timed_out:
            return (f"still running after {self.limit:g} s, stopped (its last line: "
                    f"{self.last_line()})")
        if self.code == 127 and not self.seconds:
            return self.stderr
        dropped = f" (the network dropped {self.drops})" if self.drops else ""
        return f"ended with status {self.code} after {self.seconds:.1f} s{dropped}"


def run_under_box(box: Box, program: ProgramTarget, list_text: str | None, limit: float,
                  watch: Callable[[], bool] | None = None, early_after: float = 0.0,
                  bound: bool = False) -> Run:
    """Run the program once on `list_text` (None: no list file at all) with `limit` seconds.
    `watch`, polled while it runs, says when the slowest hosts hold their connections: the
    output file is read each time it says so, `early_after` seconds into the run at the
    earliest, and the last reading kept (the file just before the slowest hosts let go).
    `bound`, for a run on hosts that never answer: every poll samples the connections the
    program holds established (`open_peak`, those held before it started left out), and the
    program is stopped once the box has seen requests of this run and then no request and no
    DNS query for longer than a resolver waits before it asks again (the connections it holds
    are then all it opens until they time out; a DNS answer the network dropped would have
    been asked again by then)."""
    work = program.workdir or Path.cwd()
    (work / OUTPUT).unlink(missing_ok=True)
    listed = work / LIST
    if list_text is None:
        listed.unlink(missing_ok=True)
    else:
        listed.write_text(list_text, encoding="utf-8")
    argv = program.command()
    run = Run(argv=argv, limit=limit)
    with tempfile.TemporaryDirectory(prefix="conformance-probe-") as scratch:
        out_path, err_path = Path(scratch) / "stdout", Path(scratch) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            counted = net_counters()
            before = box.client_connections() if bound else 0
            run.extra["quiet"] = quiet = box.resolver_timeout + SETTLE
            run.started = time.monotonic()
            try:
                popen = subprocess.Popen(box.command(argv, work), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True,
                                         env=target_env({**os.environ, **box.env()}),
                                         cwd=work)
            except OSError as exc:
                run.code, run.stderr = 127, f"cannot start {argv[0]}: {exc.strerror or exc}"
                run.ended = time.monotonic()
                return run
            deadline = run.started + limit
            while popen.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL)
                now = time.monotonic()
                if bound:
                    run.open_peak = max(run.open_peak, box.client_connections() - before)
                if (watch is not None and now - run.started >= early_after
                        and popen.poll() is None and watch()):
                    run.early = _read(work / OUTPUT) or ""
                    run.early_at = now - run.started
                if bound and popen.poll() is None and _quiet(box, run.started, now, quiet):
                    run.settled = True
                    break
            if popen.poll() is None:
                run.timed_out = not run.settled
                stop_group(popen)
            run.ended = time.monotonic()
            run.code = None if run.timed_out else popen.returncode
            after = net_counters()
            run.drops = drops(counted, after)
            run.dropped = sum(after[k] - counted.get(k, 0) for k in after)
        run.seconds = run.ended - run.started
        run.stdout = out_path.read_text(encoding="utf-8", errors="replace")
        run.stderr = err_path.read_text(encoding="utf-8", errors="replace")
    limit_hit(run.code, run.stdout + run.stderr)
    run.output = _read(work / OUTPUT)
    run.records, run.problem = parse_output(run.output)
    return run


def _quiet(box: Box, since: float, now: float, seconds: float) -> bool:
    """Whether the box has seen requests since `since`, and neither a request nor a DNS query
    in the last `seconds`."""
    # Both come in arrival order, so the latest of each is its last: polled every tenth of a
    # second, going through (or copying) thousands each time cost a run a second of CPU.
    hits = box.seen()
    if not hits or hits[-1].at < since:
        return False
    asked = box.last_query_at()
    return now - max(hits[-1].at, since if asked is None else asked) >= seconds


# Not TcpExt ListenOverflows: the box's BLACKHOLE drops every SYN through a full accept queue.
COUNTERS = {("Udp", "RcvbufErrors"):
            "UDP datagrams (DNS answers) for want of room in a receive buffer"}


def net_counters() -> dict[str, int]:
    """The run's network's counters of packets dropped for want of room (this process lives
    in the run's own network, so they are the box's and the program's alone)."""
    out: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            lines = Path(path).read_text(encoding="ascii").splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            group = names.split(":", 1)[0]
            for name, value in zip(names.split()[1:], values.split()[1:], strict=False):
                what = COUNTERS.get((group, name))
                if what is not None and value.lstrip("-").isdigit():
                    out[what] = int(value)
    return out


def drops(before: dict[str, int], after: dict[str, int]) -> str:
    """The drops between two readings of `net_counters`, in words ("" when none)."""
    return ", ".join(f"{after[k] - before.get(k, 0)} {k}" for k in after
                     if after[k] > before.get(k, 0))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def parse_output(text: str | None) -> tuple[list[Any] | None, str]:
    """The records of domain_status's text, or None and why: one JSON document, a list of
    objects."""
    if text is None:
        return None, f"there is no file {OUTPUT} in the program's working folder"
    if not text.strip():
        return None, f"{OUTPUT} is empty"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"{OUTPUT} is not one JSON document ({exc}); it starts {text[:120]!r}"
    if not isinstance(data, list):
        return None, f"{OUTPUT} holds a JSON {type(data).__name__}, not a list"
    wrong = [i for i, item in enumerate(data) if not isinstance(item, dict)]
    if wrong:
        return None, (f"{OUTPUT}'s item {wrong[0]} is {json.dumps(data[wrong[0]])[:80]}, not an "
                      f"object ({len(wrong)} of {len(data)} items are not)")
    return data, ""


def records_so_far(text: str) -> int:
    """How many records a file being written holds already: the whole document's when it
    parses, else the objects of an unfinished list (`[` then items; one per line or not)."""
    stripped = text.strip()
    if not stripped:
        return 0
    with contextlib.suppress(ValueError):
        data = json.loads(stripped)
        return len(data) if isinstance(data, list) else 0
    for ending in ("]", "\n]", "}]"):
        with contextlib.suppress(ValueError):
            data = json.loads(stripped.rstrip(",") + ending)
            return len(data) if isinstance(data, list) else 0
    return stripped.count('"http_status"')
