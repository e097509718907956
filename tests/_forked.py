"""`python -m conformance ARGS` for the tests, forked from a warm interpreter: the libraries every
run imports (pytest, httpx, aiohttp, rich, jsonschema, schemathesis, hypothesis: most of a run's
second of CPU, hundreds of runs a test session) are imported once per test worker, by a fork
server, and each run is a fork of it that runs the command's `main()`, as `python -m conformance`
does, with its own folder, environment, session, stdin, stdout and stderr.

Rules: the fork server imports no module of this repository, so each run imports ours from the
files as they are now, and fuzzing draws the same constants from them (hypothesis reads the local
modules a process has imported) as a fresh interpreter's run; nothing of this module is in the
run either (its body is code text, executed by a builtin). Where there is no fork server (not
POSIX), or with CONFORMANCE_TESTS_FRESH=1, each run is a fresh interpreter instead.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

# What runs import from outside this repository (any missing is passed over), as the runs of
# the twins showed: importing them in the fork server changes nothing a run does but the time its
# imports take. The pytest plugins are those pytest loads for every run.
WARM = [
    "pytest", "_pytest.python", "_pytest.fixtures", "_pytest.runner", "_pytest.assertion.rewrite",
    "_pytest.debugging", "_pytest.faulthandler", "_pytest.helpconfig", "_pytest.junitxml",
    "_pytest.pastebin", "_pytest.setuponly", "_pytest.setupplan", "_pytest.skipping",
    "_pytest.threadexception", "_pytest.tracemalloc", "_pytest.unittest", "_pytest._argcomplete",
    "pluggy", "httpx", "httpcore", "anyio", "anyio.from_thread", "anyio._backends._asyncio",
    "anyio.streams.memory", "anyio.streams.stapled", "anyio.streams.tls", "aiohttp", "aiohttp.web",
    "jsonschema", "yaml", "rich.console", "rich.progress", "rich.table", "rich.rule", "psutil",
    "hypothesis", "hypothesis.strategies", "hypothesis.stateful", "schemathesis",
    "schemathesis.checks", "schemathesis.openapi", "schemathesis.openapi.loaders",
    "schemathesis.specs.openapi.schemas", "schemathesis.transport.requests",
    "schemathesis.generation.value", "schemathesis.generation.body_overrides",
    "schemathesis.generation.dictionaries", "schemathesis.python._constants.orchestrator",
    "schemathesis.transport.asgi", "schemathesis.transport.wsgi",
    "hypothesis.strategies._internal.flatmapped", "hypothesis.strategies._internal.random",
    "requests", "urllib3", "trustme", "dnslib", "h11", "pdb", "faulthandler", "rich._emoji_codes",
    "uvicorn", "fastapi", "flask", "xml.etree.ElementTree", "encodings.idna", "_strptime",
    "concurrent.futures.thread",
]

# The body of a forked run. `spec` holds its argv, folder, environment and output files; what
# `python -m conformance` does with main()'s result (or exception) it does too.
_BODY = """
import os, sys
os.setsid()
os.chdir(spec["cwd"])
os.environ.clear()
os.environ.update(spec["env"])
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
for fd, name in ((1, spec["stdout"]), (2, spec["stderr"])):
    out = os.open(name, os.O_WRONLY | os.O_TRUNC)
    os.dup2(out, fd)
    os.close(out)
sys.stdin = open(0, closefd=False)
sys.path[:0] = [spec["cwd"]]
sys.argv = [spec["main"], *spec["argv"]]
code = 1
try:
    from conformance._cli import main
    code = main(spec["argv"])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if not isinstance(exc.code, int | None):
        print(exc.code, file=sys.stderr)
except BaseException:
    import traceback
    traceback.print_exc()
    code = 1
finally:
    sys.stdout.flush()
    sys.stderr.flush()
os._exit(code)
"""


def _fresh() -> bool:
    return (os.environ.get("CONFORMANCE_TESTS_FRESH") == "1"
            or "forkserver" not in multiprocessing.get_all_start_methods())


def run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float
        ) -> tuple[int, str, str]:
    """Run `python -m conformance ARGV` in `cwd` with `env`: its exit status, stdout and stderr;
    subprocess.TimeoutExpired (the run and what it started killed) after `timeout` seconds."""
    if _fresh():
        done = subprocess.run([sys.executable, "-m", "conformance", *argv], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, env=env)
        return done.returncode, done.stdout, done.stderr
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WARM)
    with tempfile.TemporaryDirectory(prefix="conformance-test-run-") as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        out.touch()
        err.touch()
        spec = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out),
                "stderr": str(err), "main": str(cwd / "conformance" / "__main__.py")}
        process = context.Process(target=exec, args=(_BODY, {"spec": spec}), daemon=False)
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            assert process.pid is not None
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # it made its own session
            process.join()
            raise subprocess.TimeoutExpired(["conformance", *argv], timeout)
        code = process.exitcode
        return (code, out.read_text(encoding="utf-8", errors="replace"),
                err.read_text(encoding="utf-8", errors="replace"))
