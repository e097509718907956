"""Reading a load tester's summary leniently: its numbers by their labels, in the seed's layout or
close to it, or from one JSON object.

Rules: a line is read as labels each followed by a number (`Total requests sent: 200`, `min 5.1
| max 480`, `sent=200`); a number in brackets is a note on the one before it and is skipped, a
percentage too, and so is a number glued to letters (`p99`, `5xx`, `50th` are words). A label
is known by its words (below); one naming a parameter (`Timeout for responses`, `Test duration`,
`Requests per second`) is no count. The last value printed for a count wins (progress lines
come before the summary). A status code's line starts with the code (`200 OK: 188`, `HTTP 200:
188`, `[404] 2`), its count the first number after the code. A latency is in ms unless its
number says `s`. Stdout that is one JSON object is read by its keys, nested keys joined
(`latency_ms.p99`, `status_codes.200`), with the same words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

COUNTS = ("sent", "completed", "failed", "timeouts", "connection", "http_5xx")
STATS = ("min", "max", "mean", "median", "p75", "p90", "p95", "p99")
LABELS = {
    "sent": "total requests sent", "completed": "completed successfully",
    "failed": "failed requests", "timeouts": "timeout errors",
    "connection": "connection errors", "http_5xx": "HTTP errors (5xx)",
}

_NUMBER = re.compile(r"(?<![\w.])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)"
                     r"\s*(ms|msec|s|sec|secs|seconds|%)?(?![\w.%])")
_WORD = re.compile(r"[a-z0-9]+")
_CODE = re.compile(r"^[\s\-*•#>\[(|]*(?:(?:http|status|code)\s*)?\[?([1-5]\d\d)\b\]?(.*)$",
                   re.IGNORECASE)
_STAT_WORDS = {
    "min": "min", "minimum": "min", "max": "max", "maximum": "max", "mean": "mean",
    "avg": "mean", "average": "mean", "median": "median", "p50": "median", "50th": "median",
    "p75": "p75", "75th": "p75", "p90": "p90", "90th": "p90", "p95": "p95", "95th": "p95",
    "p99": "p99", "99th": "p99",
}
# Words after a number at a line's start that make it a count, not a status code.
_NOT_REASON = {"request", "requests", "sent", "in", "of", "done", "completed", "responses",
               "ms", "s", "seconds"}
# Words a latency's label may hold besides its statistic.
_LATENCY_NOISE = {"latency", "latencies", "response", "responses", "time", "times", "ms", "rt",
                  "percentile", "pct", "from", "send", "actual", "scheduled", "start", "value",
                  "of", "the", "request", "requests", "duration", "durations", "stats", "resp"}
# Words of a label that names a parameter or a rate, not a count.
_PARAMETER = {"duration", "elapsed", "rps", "rate", "second", "seconds", "throughput", "per",
              "url", "target", "test", "planned", "expected", "concurrency", "time"}


@dataclass
class Summary:
    """What a tester's summary said: counts by name, latencies (ms) by statistic (every value
    read, in order), status codes with their counts, and where it came from."""

    counts: dict[str, float] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    codes: dict[int, float] = field(default_factory=dict)
    json: bool = False

    def count(self, name: str) -> float | None:
        """The count `name` (one of COUNTS), None when the summary gave none."""
        return self.counts.get(name)

    def missing(self, names: tuple[str, ...]) -> list[str]:
        """Which of the counts `names` the summary did not give."""
        return [n for n in names if n not in self.counts]

    def shown(self) -> str:
        """What was read, in one line, for a failure's `actual`."""
        parts = [f"{n} {_num(v)}" for n, v in self.counts.items()]
        parts += [f"{s} {'/'.join(_num(v) for v in vs)} ms" for s, vs in self.latency.items()]
        if self.codes:
            parts.append("codes " + ", ".join(f"{c}: {_num(v)}" for c, v in
                                              sorted(self.codes.items())))
        return "; ".join(parts) or "no labelled number"


def _num(value: float) -> str:
    return f"{value:g}"


def classify(label: str) -> str | None:
    """The count or `latency:STAT` a label names, None when none (a parameter, a rate,
    something else)."""
    words = _WORD.findall(label.lower().replace("_", " "))
    if not words:
        return None
    stats = [_STAT_WORDS[w] for w in words if w in _STAT_WORDS]
    rest = [w for w in words if w not in _STAT_WORDS and w not in _LATENCY_NOISE]
    if len(stats) == 1 and not rest:
        return f"latency:{stats[0]}"
    if "4xx" in words or "3xx" in words or "2xx" in words:
        return None
    if "5xx" in words or (("http" in words or "server" in words)
                          and any(w.startswith("err") for w in words)):
        return "http_5xx"
    if any(w.startswith(("timeout", "timed")) for w in words):
        return None if {"for", "wait", "limit"} & set(words) else "timeouts"
    if _PARAMETER & set(words):
        return None
    if any(w.startswith("conn") for w in words):
        return "connection"
    if any(w.startswith(("fail", "error", "err")) for w in words):
        return "failed"
    if any(w.startswith(("complet", "success", "succeed", "passed")) or w == "ok"
           for w in words):
        return "completed"
    if {"sent", "total", "requests", "issued", "started"} & set(words):
        return "sent"
    return None


def _value(text: str, unit: str | None) -> float:
    value = float(text.replace(",", ""))
    return value * 1000 if unit in ("s", "sec", "secs", "seconds") else value


def _pairs(line: str) -> list[tuple[str, float, str | None]]:
    """The (label, number, unit) pairs of a line: each number with the text before it."""
    out: list[tuple[str, float, str | None]] = []
    last = 0
    for match in _NUMBER.finditer(line):
        label = line[last:match.start()]
        last = match.end()
        if match.group(2) == "%" or label.strip().startswith("("):
            continue  # a share, or a note on the number before it
        out.append((label, _value(match.group(1), match.group(2)), match.group(2)))
    return out


def _code_line(line: str) -> tuple[int, float] | None:
    found = _CODE.match(line)
    if found is None:
        return None
    reason = _NUMBER.split(found.group(2), maxsplit=1)[0]
    if _NOT_REASON & set(_WORD.findall(reason.lower())):
        return None  # `200 requests sent`: a count that starts a line, not a status code
    for match in _NUMBER.finditer(found.group(2)):
        if match.group(2) != "%":
            return int(found.group(1)), _value(match.group(1), None)
    return None


def parse_text(text: str) -> Summary:
    """The summary in a tester's text output."""
    summary = Summary()
    latency: dict[str, float] = {}
    for line in text.splitlines():
        code = _code_line(line)
        if code is not None:
            summary.codes[code[0]] = code[1]
            continue
        for label, value, _ in _pairs(line):
            kind = classify(label)
            if kind is None:
                continue
            if kind.startswith("latency:"):
                latency[kind.split(":", 1)[1]] = value
            else:
                summary.counts[kind] = value
    summary.latency = {k: [v] for k, v in latency.items()}
    return summary


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        out: list[tuple[str, Any]] = []
        for key, value in data.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, data)]


def parse_json(data: dict[str, Any]) -> Summary:
    """The summary in a JSON object."""
    summary = Summary(json=True)
    for path, value in _flatten(data):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        segments = path.split(".")
        code = next((s for s in segments if re.fullmatch(r"[1-5]\d\d", s)), None)
        if code is not None:
            summary.codes[int(code)] = float(value)
            continue
        kind = classify(path.replace(".", " "))
        if kind is None:
            continue
        if kind.startswith("latency:"):
            unit_s = any(s.endswith(("_s", "_sec", "_seconds")) for s in segments)
            summary.latency.setdefault(kind.split(":", 1)[1], []).append(
                float(value) * (1000 if unit_s else 1))
        else:
            summary.counts[kind] = float(value)
    return summary


def as_json(stdout: str) -> dict[str, Any] | None:
    """Stdout as one JSON object, or None when it is not one."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse(stdout: str) -> Summary:
    """A tester's summary from its stdout: one JSON object, or text."""
    data = as_json(stdout)
    return parse_json(data) if data is not None else parse_text(stdout)
