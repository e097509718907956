"""One run of a downloader under the box: the CSV written as `images.csv` in the program's
working folder, the folder `images` beside it (made or not, prepared or not), the program
started under the box, its end awaited within a limit, and what it left: exit status, output,
every file of the folder, the box's requests and its peak of answers in flight.

Rules: the CSV, the folder and N go where the command's placeholders put them (`{csv}`,
`{folder}`, `{limit}`), else they are appended in that order. Output goes to files, never a
pipe that could fill. A program still running at its limit is stopped (Ctrl+C, then SIGKILL to
its process group), and what it left is judged as far as it can be. A run given `quiet` (one of
a program already seen not to end by itself) stops it sooner: once it has done something (an
output, a file, a request) and then been still that long (no output, no file changed, no
request, no connection to the box open). Each run starts from an empty folder: the last run's
CSV and folder are removed first.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance._box import Box, Hit, Hosts
from conformance._client_run import TRACEBACK, ended, output_ends
from conformance._isolation import limit_hit, target_env
from conformance._target import ProgramTarget, stop_group

CSV = "images.csv"
FOLDER = "images"
POLL = 0.05


def _activity(out: Path, err: Path, folder: Path, hosts: Hosts | None
              ) -> tuple[int, int, int, frozenset[tuple[str, int]]]:
    """What a running program has done so far, to tell whether it is still doing something:
    its output's sizes, the box's requests, the folder's files and their sizes."""
    files: frozenset[tuple[str, int]] = frozenset()
    with contextlib.suppress(OSError):
        files = frozenset((e.name, e.stat().st_size) for e in os.scandir(folder))
    return (out.stat().st_size, err.stat().st_size, len(hosts.seen()) if hosts else 0, files)


def command_line(program: ProgramTarget, folder: str, limit: str) -> list[str]:
    """The program's argv for one run (see the module's rules)."""
    return program.filled({"csv": CSV, "folder": folder, "limit": limit},
                          ("csv", "folder", "limit"))


@dataclass
class Run:
    """What one run of the program showed."""

    name: str
    argv: list[str]
    folder: str
    code: int | None = None  # None: stopped at its limit
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    limit: float = 0.0
    timed_out: bool = False
    files: dict[str, bytes] = field(default_factory=dict)  # the folder after the run
    folder_exists: bool = False
    hits: list[Hit] = field(default_factory=list)
    peak_answering: int = 0
    csv: str = ""
    started: float = 0.0  # time.monotonic() at its start
    still: float = 0.0  # stopped after this long still (its `quiet`); 0: at its limit, or ended

    @property
    def traceback(self) -> bool:
        """Whether the program printed a traceback by itself (not the one Ctrl+C gave when it
        was stopped at its limit)."""
        return not self.timed_out and TRACEBACK in self.output

    @property
    def output(self) -> str:
        """Stdout and stderr together."""
        return self.stdout + "\n" + self.stderr

    def ending(self) -> str:
        """How it ended, in words."""
        if self.still:
            return (f"still running after {self.seconds:.1f} s, {self.still:g} s of them with "
                    f"no output, file, request or connection, stopped (it had not ended by "
                    f"itself in an earlier run either)")
        return ended(self.code, self.seconds, self.limit, self.timed_out, self.stderr)

    def actual(self, extra: str = "") -> str:
        """What the run did, for a failure's `actual`."""
        files = ", ".join(f"{n} ({len(b):,} bytes)" for n, b in sorted(self.files.items()))
        parts = [f"the program {self.ending()}; the folder holds "
                 + (files or "nothing" if self.folder_exists else "nothing: it does not exist")]
        if extra:
            parts.append(extra)
        return "; ".join(parts + output_ends(self.stdout, self.stderr))

    def reproduce(self, spec_line: str) -> str:
        """How to repeat it: the suite's line, then this run's list and command."""
        return (f"{spec_line}  # the {self.name} run: {CSV} holds\n{self.csv.rstrip()}\n"
                f"# and the program ran as: {shlex.join(self.argv)}")


def run_under_box(box: Box, program: ProgramTarget, name: str, csv: str, limit: float, *,
                  n: str = "4", folder: str = FOLDER, prepared: dict[str, bytes] | None = None,
                  make_folder: bool = True, quiet: float = 0.0) -> Run:
    """Run the program once on `csv` with N `n`, `limit` seconds at most (or `quiet` seconds
    still, when given: see the module's rules); `prepared` files are put in the folder first
    (`make_folder` False: the folder is not made)."""
    work = program.workdir or Path.cwd()
    shutil.rmtree(work / FOLDER, ignore_errors=True)
    shutil.rmtree(work / folder.split("/", 1)[0], ignore_errors=True)
    (work / CSV).write_text(csv, encoding="utf-8")
    target = work / folder
    if make_folder:
        target.mkdir(parents=True)
        for file, data in (prepared or {}).items():
            (target / file).write_bytes(data)
    run = Run(name, command_line(program, folder, n), folder, limit=limit, csv=csv)
    hosts = box.hosts
    if hosts is not None:
        hosts.reset()
    with tempfile.TemporaryDirectory(prefix="conformance-downloader-") as scratch:
        out_path, err_path = Path(scratch) / "stdout", Path(scratch) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            started = run.started = time.monotonic()
            try:
                popen = subprocess.Popen(box.command(run.argv, work), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True,
                                         env=target_env({**os.environ, **box.env()}), cwd=work)
            except OSError as exc:
                run.code, run.stderr = 127, f"cannot start {run.argv[0]}: {exc}"
                return run
            deadline = started + limit
            before = done = _activity(out_path, err_path, target, hosts)
            calm_since = time.monotonic()
            while popen.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL)
                if not quiet:
                    continue
                now = time.monotonic()
                # Still only once it has done something: a program starting up is not done.
                now_done = _activity(out_path, err_path, target, hosts)
                if now_done != done or box.client_connections() or now_done == before:
                    done, calm_since = now_done, now
                elif now - calm_since >= quiet:
                    run.still = quiet
                    break
            if popen.poll() is None:
                run.timed_out = True
                stop_group(popen)
            run.seconds = time.monotonic() - started
            run.code = None if run.timed_out else popen.returncode
        run.stdout = out_path.read_text(encoding="utf-8", errors="replace")
        run.stderr = err_path.read_text(encoding="utf-8", errors="replace")
    limit_hit(run.code, run.stdout + run.stderr)
    run.folder_exists = target.is_dir()
    if run.folder_exists:
        run.files = {p.name: p.read_bytes() for p in sorted(target.iterdir()) if p.is_file()}
    if hosts is not None:
        run.hits = hosts.seen()
        run.peak_answering = hosts.peak_answering
    return run

