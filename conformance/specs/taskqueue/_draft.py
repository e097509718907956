"""Drafting a taskqueue protocol description from a server's OpenAPI document (conformance/
_draft.py reads it): which route submits, which shows the status and which the result, guessed
from their shapes and names, every guess marked `# guessed: check`.

The guesses: submit is the POST (or PUT) whose body has an integer field (the type) and a
string field (the data); status and result are GETs with one path parameter, told apart by
their answers' field names (status/state; result/output/...) or, failing that, the shorter path
being the status; the status words come from the status field's enum; times from date-time
fields; "not found" and "not ready" from the answers the document names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from conformance._draft import GUESSED, DraftError, Field, Operation, flow

TYPE_NAMES = ("type", "kind", "task_type", "job_type", "op", "mode")
DATA_NAMES = ("data", "text", "payload", "string", "input", "value", "content")
ID_NAMES = ("id", "task_id", "job_id", "uuid", "key")
STATUS_NAMES = ("status", "state", "stage")
RESULT_NAMES = ("result", "output", "answer", "value", "data", "text")
# Words of a status enum and the spec's word each likely means (first match wins).
WORD_HINTS = (
    ("failed", ("fail", "error", "cancel", "ошиб")),
    ("done", ("done", "finish", "complete", "success", "ready", "готов", "заверш", "выполнен")),
    ("running", ("run", "progress", "process", "work", "active", "start", "выполня")),
    ("queued", ("queue", "wait", "pend", "new", "creat", "accept", "todo", "очеред", "ожида")),
)
TIME_HINTS = (
    ("queued_at", ("queue", "creat", "submit", "added", "enqueue", "received")),
    ("started_at", ("start", "began", "begin")),
    ("finished_at", ("finish", "complet", "end", "done")),
)
NOT_READY = (409, 425, 423, 202, 204, 400)


def _rank(name: str, names: Sequence[str]) -> int:
    """How well a field's name matches a list of likely names (lower is better)."""
    low = name.lower()
    for i, want in enumerate(names):
        if low == want:
            return i
    for i, want in enumerate(names):
        if want in low:
            return len(names) + i
    return 2 * len(names)


def _best(fields: Iterable[Field], names: Sequence[str], kinds: tuple[str, ...] = ("string",),
          top: bool = True) -> Field | None:
    """The field whose name best matches `names`, among those of a type in `kinds` (only the
    top level when `top`); None when none matches any name at all."""
    found = [f for f in fields if (f.type in kinds or not f.type)
             and (not top or f.pointer.count("/") == 1)]
    found.sort(key=lambda f: _rank(f.name, names))
    if found and _rank(found[0].name, names) < 2 * len(names):
        return found[0]
    return None


def _ok_fields(op: Operation) -> tuple[Field, ...]:
    for code in (200, 201, 202):
        if op.answers.get(code):
            return op.answers[code]
    return ()


def _submit(ops: list[Operation]) -> tuple[Operation, Field, Field]:
    candidates = []
    for op in ops:
        if op.method not in ("POST", "PUT") or not op.body:
            continue
        ints = [f for f in op.body_fields if f.type == "integer"]
        strings = [f for f in op.body_fields if f.type == "string"]
        if ints and strings:
            kind = min(ints, key=lambda f: _rank(f.name, TYPE_NAMES))
            data = min(strings, key=lambda f: _rank(f.name, DATA_NAMES))
            candidates.append((len(op.path_params), op.method != "POST",
                               _rank(kind.name, TYPE_NAMES) + _rank(data.name, DATA_NAMES),
                               op, kind, data))
    if not candidates:
        raise DraftError("the document has no POST whose body has an integer field (the type) "
                         "and a string field (the data): nothing looks like submitting a task; "
                         "start from `conformance protocol taskqueue`")
    candidates.sort(key=lambda c: c[:3])
    _, _, _, op, kind, data = candidates[0]
    return op, kind, data


def _status_and_result(ops: list[Operation]) -> tuple[Operation, Operation, str]:
    gets = [op for op in ops if op.method == "GET" and len(op.path_params) == 1]
    if len(gets) < 2:
        raise DraftError("the document has fewer than two GET routes with one path parameter "
                         "(an id): nothing looks like asking a status and a result; start from "
                         "`conformance protocol taskqueue`")
    shows_status = [op for op in gets if _best(_ok_fields(op), STATUS_NAMES)]
    shows_result = [op for op in gets if _best(_ok_fields(op), RESULT_NAMES[:3])]
    status = next((op for op in shows_status if op not in shows_result), None)
    result = next((op for op in shows_result if op is not status), None)
    if status is not None and result is not None:
        return status, result, "by the fields of their answers"
    by_length = sorted(gets, key=lambda op: (len(op.path), op.path))
    status = status or next(op for op in by_length if op is not result)
    nested = [op for op in by_length if op is not status
              and op.path.startswith(status.path.rstrip("/") + "/")]
    result = result or (nested or [op for op in by_length if op is not status])[0]
    return status, result, "by their paths (the result's under the status's)"


def _words(field: Field | None) -> list[str]:
    """The `words:` block: the server's status words under the spec's, guessed."""
    if field is None or not field.enum:
        return ["# The status field lists no words (no enum): the spec's words stand for "
                "themselves.",
                "# If the server shows others, map them:  words: {status: {queued: [...], "
                "running: [...], done: [...]}}"]
    mapped: dict[str, list[str]] = {}
    unmatched = []
    for value in (str(v) for v in field.enum):
        low = value.lower()
        word = next((w for w, hints in WORD_HINTS if any(h in low for h in hints)), None)
        if word is None:
            unmatched.append(value)
        else:
            mapped.setdefault(word, []).append(value)
    lines = ["words:", "  status:"]
    for word in ("queued", "running", "done", "failed"):
        if word in mapped:
            lines.append(f"    {word}: {flow(mapped[word])}   {GUESSED}")
    if unmatched:
        lines.append(f"    # not mapped (add each under a spec word): {flow(unmatched)}")
    return lines if mapped else ["# words: none of the status enum's words could be matched "
                                 f"to the spec's: {flow(unmatched)}"]


def _path(op: Operation) -> str:
    return re.sub(r"\{[^}]+\}", "{id}", op.path, count=1)


def _not_found(op: Operation) -> str:
    if op.documented(404):
        return "not_found: {status: [404]}   # the document names a 404"
    return f"not_found: {{status: [404]}}   {GUESSED} (the document names no 404)"


def draft(ops: list[Operation], source: str) -> str:
    """A commented description of the server `ops` come from (`source`: where the document
    was read)."""
    submit, kind, data = _submit(ops)
    status, result, told = _status_and_result(ops)
    status_fields, result_fields = _ok_fields(status), _ok_fields(result)
    id_field = _best(_ok_fields(submit), ID_NAMES, ("string", "integer"))
    status_field = _best(status_fields, STATUS_NAMES)
    result_field = _best(result_fields, RESULT_NAMES)
    body = "json" if submit.body == "json" else "form"
    template = {kind.name: "{type}", data.name: "{data}"}

    lines = [
        f"# A DRAFT protocol description for `taskqueue`, made from the OpenAPI document of "
        f"{source}",
        "# by `conformance protocol taskqueue --from-url/--from-openapi`. Every line marked",
        f"# `{GUESSED}` is a guess: check it against the server, correct it, then",
        "#   conformance run taskqueue --base-url URL --protocol THIS_FILE",
        "# `conformance protocol taskqueue` prints our own description, with every key explained.",
        "spec: taskqueue",
        "transport: http",
        *_words(status_field),
        "operations:",
        "  submit:",
        f"    method: {submit.method}",
        f"    path: {submit.path}   {GUESSED} (the {submit.method} whose body has an integer "
        f"and a string field)",
        f"    {body}: {flow(template)}   {GUESSED} ({kind.name} the type 1/2/3, "
        f"{data.name} the data)",
        "    answer:",
    ]
    if id_field is not None:
        lines.append(f"      id: {{pointer: {id_field.pointer}}}   {GUESSED}")
    else:
        lines.append(f"      id: {{pointer: /id}}   {GUESSED} (the document shows no id field)")
    lines += [
        "  status:",
        "    method: GET",
        f"    path: {_path(status)}   {GUESSED} ({told})",
        "    answer:",
    ]
    if status_field is not None:
        lines.append(f"      status: {{pointer: {status_field.pointer}}}   {GUESSED}")
    else:
        lines.append(f"      status: {{pointer: /status}}   {GUESSED} (the document shows no "
                     f"status field)")
    taken: set[str] = set()
    for spec_name, hints in TIME_HINTS:
        found = next((f for f in status_fields if f.pointer.count("/") == 1
                      and f.pointer not in taken
                      and (f.format == "date-time" or f.name.endswith(("_at", "time")))
                      and any(h in f.name.lower() for h in hints)), None)
        if found is not None:
            taken.add(found.pointer)
            lines.append(f"      {spec_name}: {{pointer: {found.pointer}, optional: true}}   "
                         f"{GUESSED} (a time)")
    lines += [
        f"    {_not_found(status)}",
        "  result:",
        "    method: GET",
        f"    path: {_path(result)}   {GUESSED} ({told})",
        "    answer:",
    ]
    if result_field is not None:
        lines.append(f"      result: {{pointer: {result_field.pointer}}}   {GUESSED}")
    else:
        lines.append(f"      result: {{regex: '(?s)\\A(.*)\\Z'}}   {GUESSED} (the document "
                     f"shows no result field: the whole body)")
    code = next((c for c in NOT_READY if result.documented(c)), None)
    if code is not None:
        named = _best(result.answers[code], STATUS_NAMES, top=False)
        if named is not None:
            lines.append(f"      status: {{pointer: {named.pointer}, optional: true}}   "
                         f"{GUESSED} (in the {code} answer)")
    lines.append(f"    {_not_found(result)}")
    if code is not None:
        lines.append(f"    not_ready: {{status: [{code}]}}   {GUESSED} (the document names "
                     f"a {code})")
    else:
        lines.append(f"    not_ready: {{status: [409]}}   {GUESSED} (the document names no "
                     f"answer for a result not ready yet)")
    return "\n".join(lines) + "\n"
