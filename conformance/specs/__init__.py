"""Every spec's suite, one package per spec: `crawl-client` is `conformance.specs.crawl_client`.

A spec's package holds everything only that spec uses:
- `__init__.py`: the spec's run options, as `Options`, a frozen dataclass deriving
  `conformance._options.SpecOptions` (none: the spec has no options of its own); it imports
  nothing heavy, since every command reads it;
- `checks.py`: the checks, a pytest module (each check marked with the requirement ids it
  checks);
- `fixtures.py` (optional): the fixtures the checks use, loaded as a pytest plugin, so a spec
  that extends this one has them too;
- private helpers (`_*.py`): fake servers, parsers, harnesses, data.
A spec that `extends` another in its behaviour spec runs the other's checks first, then its
own; its `Options` derive from the other's. See CONTRIBUTING.md.
"""
