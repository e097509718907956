"""Imported once by `conformance batch`'s fork server, so that every run forked from it starts
warm: the modules a run imports, and the ones they import lazily while it runs.

Rules: only importing, never running anything, and no module that starts a thread or does work
when imported (`__main__` modules, our suites, which pytest imports itself); a module that
cannot be imported here (an optional extra) is passed over: the run imports what it needs anyway.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import pkgutil
import warnings

# Packages a run uses; their submodules are mostly imported lazily, halfway through a run.
PACKAGES = ("conformance", "_pytest", "schemathesis", "hypothesis", "httpx", "httpcore", "h11",
            "anyio", "jsonschema", "referencing", "requests", "urllib3", "charset_normalizer")
SKIP = ("conformance.suites", "conformance._preload", "hypothesis.extra")


def _wanted(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last != "__main__" and not name.startswith(SKIP) and ".tests" not in name


def preload(packages: tuple[str, ...] = PACKAGES) -> int:
    """Import `packages` and all their submodules that import cleanly; how many were imported."""
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in packages:
            try:
                package = importlib.import_module(name)
            except Exception:  # an absent optional package is no problem here
                continue
            count += 1
            walk = pkgutil.walk_packages(getattr(package, "__path__", []), name + ".",
                                         onerror=lambda _: None)
            for info in walk:
                if not _wanted(info.name):
                    continue
                with contextlib.suppress(Exception, SystemExit):
                    importlib.import_module(info.name)
                    count += 1
    return count


def _local_constants() -> None:
    """Have hypothesis read the constants of the local modules loaded so far now, once, rather
    than in every forked run's first generated example (it parses their source)."""
    with contextlib.suppress(Exception):  # a private helper of hypothesis: gone is no problem
        from hypothesis.internal.conjecture import providers

        providers._get_local_constants()


preload()
_local_constants()
# Out of the collector's sight: the forked runs neither walk these objects in every full
# collection nor copy the pages their collector headers sit on.
gc.freeze()
