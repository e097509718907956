"""One run of one spec's checks against one target, in-process through pytest, to a `RunResult`.

Rules: pytest sees only our plugin and our ini (no user config, no auto-loaded plugins, no
cache); the target is set up before and torn down after, whatever happens; a broken suite is an
error of the run (exit 3), never a pass. A server that did not start or did not last is a
verdict, not an error: its output goes once into the result (`target_output`). Request bodies
too large for a reproducer's command line go to the run's body folder (`bodies`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance import _sandbox as sandbox
from conformance._http import bodies_in
from conformance._isolation import SHARED, Network
from conformance._options import RunOptions, SpecOptions, core_options, declared, given
from conformance._plugin import CollectionProblem, ConformancePlugin
from conformance._result import RunResult
from conformance._spec import Spec
from conformance._suites import Suite, specs_dir, suite_of
from conformance._target import (
    ProgramTarget,
    ServerTarget,
    TargetError,
    free_port,
    host_port,
    program_target,
    server_target,
)

EXTRA_PORTS = ("{port2}", "{port3}", "{port4}")  # more free ports, for a reference of several


def _fill(value: Any, ports: dict[str, str]) -> Any:
    """`value` with the extra-port placeholders filled in, through dicts and lists."""
    if isinstance(value, str):
        for name, port in ports.items():
            value = value.replace(name, port)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ports) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ports) for v in value]
    return value


def _word(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def reference_command(spec: Spec, options: SpecOptions | None = None, tmp: str = "",
                      ports: dict[str, str] | None = None) -> str:
    """The reference's real start command, as one shell-quoted line with `{port}` left in (and
    `{OPTION}` filled in with the value of that option of the run, e.g. `{time_scale}`; `{tmp}`,
    for one that keeps files, with a folder of the run's own; `{port2}`..`{port4}`, for one made
    of several servers, with the free ports in `ports`)."""
    import reference

    values = {f"{{{o.name}}}": _word(getattr(options or spec.options_class(), o.name))
              for o in spec.options}
    fill = {**(ports or {}), **values}
    where = str(Path(reference.__file__).resolve().parent)
    words = [_fill(w, fill).replace("{python}", sys.executable)
             .replace("{reference}", where).replace("{tmp}", tmp)
             for w in spec.reference_command]
    return shlex.join(words)


# hypothesis's folders of what it computes from fixed inputs: tables from unicodedata, and the
# constants it draws from our modules' source (keyed by the source's hash).
KEPT = ("unicode_data", "constants")


def hypothesis_cache() -> Path:
    """Where hypothesis's tables (KEPT) are kept between runs: the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "assignments-conformance" / "hypothesis"


def _tables_in(source: Path, target: Path) -> None:
    """Copy the tables of KEPT that `target` lacks from `source`, each written whole (a
    temporary name, then a rename), so that parallel runs never read half a table. Best
    effort: a cache that cannot be read or written only costs time."""
    with contextlib.suppress(OSError):
        tables = (t for kept in KEPT for t in (source / kept).rglob("*") if t.is_file()
                  and not t.name.startswith("."))
        for table in tables:
            there = target / table.relative_to(source)
            if there.exists():
                continue
            there.parent.mkdir(parents=True, exist_ok=True)
            partial = there.with_name(f".{there.name}.{os.getpid()}")
            shutil.copyfile(table, partial)
            os.replace(partial, there)


@contextlib.contextmanager
def _isolated_pytest_env(fuzzing: bool) -> Iterator[None]:
    """No user pytest options or plugins, and, for a suite that may fuzz (`fuzzing`: its spec
    has an OpenAPI document, which schemathesis fuzzes), hypothesis's cache in a temporary
    folder, so a run leaves nothing in the folder it was started from. Only what hypothesis
    computes from fixed inputs (KEPT) is kept, in the user's cache folder: computed afresh, a
    codec's table and our modules' constants cost a fuzzing run a second or two of CPU, the same
    each time."""
    saved = {k: os.environ.get(k) for k in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    os.environ.pop("PYTEST_ADDOPTS", None)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if fuzzing:
        # Here, not at the top, and only for a suite that fuzzes: importing hypothesis costs
        # every other run a sixth of a second of CPU, and a class's runs number in hundreds.
        from hypothesis.configuration import set_hypothesis_home_dir

        scratch = tempfile.TemporaryDirectory(prefix="conformance-hypothesis-")
        _tables_in(hypothesis_cache(), Path(scratch.name))
        set_hypothesis_home_dir(scratch.name)
    try:
        yield
    finally:
        if scratch is not None:
            set_hypothesis_home_dir(None)
            _tables_in(Path(scratch.name), hypothesis_cache())
            scratch.cleanup()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _pytest(suite: Suite, plugin: ConformancePlugin, *, fuzzing: bool = True
            ) -> tuple[int, str]:
    """Run `suite` with `plugin`: its exit code and output. `fuzzing` False: the spec has no
    OpenAPI document, so hypothesis is neither imported nor given a cache folder."""
    root = specs_dir()
    args = [
        *(str(path) for path in suite.checks), "-c", str(root / "pytest.ini"),
        "--rootdir", str(root),
        "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:warnings", "-s",
        # Its full collections at the end cost a run a tenth of a second; checks turn what a
        # target does into verdicts, never into unraisable exceptions.
        "-p", "no:unraisableexception",
        *(word for module in suite.fixtures for word in ("-p", module)),
    ]
    buffer = io.StringIO()
    with _isolated_pytest_env(fuzzing), \
            contextlib.redirect_stdout(buffer), \
            contextlib.redirect_stderr(buffer):
        try:
            code = int(pytest.main(args, plugins=[plugin]))
        except CollectionProblem as exc:
            return 3, str(exc)
    if plugin.interrupted:
        raise KeyboardInterrupt
    return code, buffer.getvalue()


def rerun_command(spec: Spec, base_url: str | None, command: str | None,
                  options: RunOptions[SpecOptions]) -> str:
    """The `conformance run` line that repeats this run: its target and every option given a
    value other than its default, core options first, in declaration order."""
    words = ["conformance", "run", spec.name]
    if base_url:
        words += ["--base-url", base_url]
    if command:
        words += ["--command", command]
    for source, declared_options in ((options, core_options()),
                                     (options.spec, declared(type(options.spec)))):
        changed = given(source)
        for o in declared_options:
            if o.name in changed:
                words += o.words(changed[o.name])
    return shlex.join(words)


def network_needed(spec: Spec, base_url: str | None, command: str | None,
                   options: RunOptions[SpecOptions]) -> str:
    """'' when a run of `spec` may have a network of its own; else why it must share this
    machine's (the target runs outside the run, or an option names something out there)."""
    if options.shared_network:
        return "--shared-network"
    if base_url is not None and command is None:
        return "the target runs outside this run, at its URL"
    if base_url is not None and host_port(base_url)[0] not in ("127.0.0.1", "localhost", "::1"):
        return "its base URL is not on this machine's loopback"
    for o in declared(type(options.spec)):
        if o.reaches_outside(getattr(options.spec, o.name)):
            return f"{o.flag} names something outside the run"
    return ""


# Not copied with a --workdir into a sandbox's private folder: environments and caches, which a
# command names where they are (read-only) if it needs them.
_NOT_COPIED = (".venv", "venv", ".git", "__pycache__", "node_modules", ".tox", ".mypy_cache")
# The batch names the roster's folder here, so that no target sees the other students' files.
HIDE_VARIABLE = "CONFORMANCE_SANDBOX_HIDE"


def _sandbox_for(spec: Spec, options: RunOptions[SpecOptions]) -> sandbox.Sandbox:
    """The sandbox for a run of `spec`: its limits, then the run's `--limit`s over them."""
    try:
        limits = sandbox.Limits().changed(spec.limits)
    except sandbox.LimitError as exc:
        raise TargetError(f"{spec.name}: its limits: {exc}") from None
    hide = tuple(Path(p) for p in os.environ.get(HIDE_VARIABLE, "").split(os.pathsep) if p)
    written = tuple(Path(getattr(options.spec, o.name)).resolve()
                    for o in declared(type(options.spec))
                    if o.written and getattr(options.spec, o.name))
    return sandbox.Sandbox(limits=limits.changed(options.limit), enabled=not options.no_sandbox,
                           hide=hide, writable=written)


def run_spec(spec: Spec, *, base_url: str | None = None, command: str | None = None,
             options: RunOptions[SpecOptions] | None = None, only: set[str] | None = None,
             startup_timeout: float = 15.0,
             on_progress: Callable[[int, int, str], None] | None = None,
             network: Network = SHARED, bodies: Path | None = None) -> RunResult:
    """Check `spec` against the server at `base_url`, or started by `command`, or our reference.

    `options.spec` must be an instance of the spec's options class (its defaults when not).
    `network` says whether this process has a network of its own (conformance/_isolation.py);
    on a shared one, fixed ports are locked and listeners checked.
    `bodies` is where reproducers put request bodies they do not carry on their command line
    (conformance/_http.py; None: a temporary folder, made when the first is written).
    Raises TargetError when the target cannot be set up as asked (a usage problem).
    """
    asked: RunOptions[SpecOptions] = options or RunOptions(spec=spec.options_class())
    if not isinstance(asked.spec, spec.options_class):
        raise TypeError(f"options.spec is a {type(asked.spec).__name__}, "
                        f"not {spec.options_class.__name__}")
    options = asked
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    embedded = base_url is None and command is None
    ports: dict[str, str] = {}
    if embedded:
        used = " ".join(spec.reference_command)
        ports = {name: str(free_port()) for name in EXTRA_PORTS if name in used}
    if embedded and spec.reference_options:
        # How the reference's command starts it (e.g. its cache timeout) is known: say so.
        options = dataclasses.replace(options, spec=dataclasses.replace(
            options.spec, **_fill(spec.reference_options, ports)))
    suite = suite_of(spec.chain)
    box = _sandbox_for(spec, options)
    with contextlib.ExitStack() as stack:
        stack.enter_context(sandbox.using(box))
        # A started target runs in a folder of its own, so what it writes there (uploads,
        # tables) meets no other run's.
        workdir = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="conformance-work-")))
        if options.workdir:
            given_folder = Path(options.workdir).resolve()
            if box.why_not:
                workdir = given_folder
            else:
                # In a sandbox the target writes to a copy: the student's folder as handed in
                # stays as it was, whatever the program does.
                workdir = workdir / given_folder.name
                shutil.copytree(given_folder, workdir, symlinks=True,
                                ignore=shutil.ignore_patterns(*_NOT_COPIED))
        tmp = ""
        if embedded and any("{tmp}" in w for w in spec.reference_command):
            # The reference's folder for its files, in its working folder: the one place a
            # sandbox lets it write.
            tmp = str(workdir / "files")
            Path(tmp).mkdir(exist_ok=True)
        start = reference_command(spec, options.spec, tmp, ports) if embedded else command
        target: ServerTarget | ProgramTarget
        if spec.kind == "program":
            if base_url is not None:
                raise TargetError(f"{spec.name} checks a program: give --command, not --base-url")
            assert start is not None
            target = stack.enter_context(program_target(
                start, default_url=spec.default_url, server_port=options.spec.program_port(),
                workdir=workdir, own_network=network.own,
                server_running=options.spec.server_running()))
        else:
            target = stack.enter_context(server_target(
                base_url, start, default_url=spec.default_url, startup_timeout=startup_timeout,
                workdir=workdir, own_network=network.own))
        plugin = ConformancePlugin(spec, target, options, only=only, on_progress=on_progress)
        with bodies_in(bodies):
            code, output = _pytest(suite, plugin, fuzzing=spec.openapi is not None)
        label = f"our reference ({target.label})" if embedded else target.label
        # Read now: the server's output file goes when the target is torn down.
        trouble = target.trouble() if isinstance(target, ServerTarget) else ""
    error = ""
    results = plugin.results()
    if plugin.errors:
        error = "a check of the suite broke, so its requirements were not judged (please " \
                "report this): " + "; ".join(plugin.errors)
    elif code not in (0, 1):
        error = f"the suite could not run (pytest exit {code}): {output.strip()[-3000:]}"
        for r in results:
            r.verdict, r.reason, r.failures = "not_run", "the suite itself could not run", []
    return RunResult(
        spec=spec, target=label, strict=options.strict, seed=options.seed,
        started_at=started_at, duration_s=round(time.monotonic() - t0, 3),
        results=results, error=error, options=options,
        isolation=(f"{network.describe()}; {box.describe()}" if start is not None else
                   "none: the target runs outside this run, at its URL"),
        # The options asked for, not those the reference's own filled in: a re-run without a
        # target starts the reference again, and they with it.
        rerun=rerun_command(spec, base_url, command, asked),
        target_output=trouble,
        stopped=list(box.stopped),
    )
