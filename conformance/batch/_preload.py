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
            "anyio", "jsonschema", "referencing", "requests", "urllib3", "charset_normalizer",
            "rich")
# Not needed by runs of HTTP specs, and slow to import: GraphQL, schemathesis's own command line
# and pytest plugin, the in-process servers of the client suites and what runs them (FastAPI,
# Flask, the references they serve), the docs.
SKIP = ("conformance.batch._preload", "conformance._servers", "conformance._docs",
        "conformance._launch",
        "hypothesis.extra",
        "schemathesis.graphql", "schemathesis.specs.graphql", "schemathesis.cli",
        "schemathesis.pytest", "schemathesis.engine", "schemathesis.contrib",
        "anyio._backends._trio", "anyio.pytest_plugin")


def _wanted(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    # A spec's package itself declares its options, which every run reads; its modules are its
    # suite and what only the suite uses, which pytest imports itself.
    in_a_suite = name.startswith("conformance.specs.") and name.count(".") > 2
    return (last != "__main__" and not name.startswith(SKIP) and ".tests" not in name
            and not in_a_suite)


def _import_tree(name: str) -> int:
    """Import module `name` and, for a package, its wanted submodules; how many were imported.
    (pkgutil.walk_packages would import every subpackage, wanted or not, to look inside.)"""
    try:
        module = importlib.import_module(name)
    except (Exception, SystemExit):  # an optional extra that is not installed: no matter
        return 0
    count = 1
    for info in pkgutil.iter_modules(getattr(module, "__path__", None) or [], name + "."):
        if _wanted(info.name):
            count += _import_tree(info.name)
    return count


def preload(packages: tuple[str, ...] = PACKAGES) -> int:
    """Import `packages` and all their wanted submodules that import cleanly; how many."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(_import_tree(name) for name in packages)


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
