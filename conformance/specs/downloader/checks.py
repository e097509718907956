"""Checks of the `downloader` spec (openapi/downloader.requirements.yaml) against any image
downloader of seed 002, run in the box (conformance/_box).

One box serves every run of a suite run: image hosts whose paths are real images, faults by
path (404, 500, reset mid-body, cut short, an HTML page under `.jpg`) and by host (a name that
does not resolve, a host that never answers), and paced images for the bound. Each run is made
when a check first needs it and kept: clean, faults, bound, names, header, no folder, usage,
resume. Each check judges one run's evidence: the folder's files byte by byte against what the
box served, the box's requests and its peak of answers in flight, the program's output.

Rules: every failure names the files (a few, and how many in all), expected vs actual, and the
reproducer, `conformance run downloader --command ...` (the box and the lists are fixed, so that
line makes the same runs) with the run's CSV. A run that could not start at all makes its checks
"not run"; any other run is judged as far as it goes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest

from conformance._box import Box
from conformance._checks import CheckFailure, NotImplementedFeature, NotRun, requirement
from conformance._client_run import shown, started_box
from conformance._target import ProgramTarget
from conformance.specs.downloader._runs import Run, run_under_box
from conformance.specs.downloader._sites import (
    BOUND_IMAGES,
    MOVED,
    PACE,
    PART,
    RESUMED,
    Image,
    body,
    bound,
    clean,
    clean_list,
    csv_text,
    faults,
    faults_list,
    moved,
    names,
    sites,
)

LIMIT = 15.0  # seconds a run may take (a correct program takes one or two)
FAULTS_LIMIT = 45.0  # where a host never answers: the program's own timeout decides
# Once a run was stopped at its limit, the program does not end by itself (DL-01's failure, or
# the check of that run's): its later runs are stopped once it has been still this long, as what
# it left then is what it would leave at the limit, and a hanging program then costs a suite run
# seconds, not two minutes. Far longer than a working program is ever still: it is downloading
# (a connection open), writing or printing.
QUIET = 3.0
BOUND_N = 4
TEMPORARY = (".part", ".tmp", ".temp", ".download", ".crdownload", "~")


@dataclass
class Seen:
    """The box and every run of one suite run, each run made when first needed."""

    box: Box
    program: ProgramTarget
    runs: dict[str, Run] = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The `conformance run` line that repeats the suite run."""
        return (f"conformance run downloader --command "
                f"{shlex.quote(shlex.join(self.program.argv))}")

    def run(self, name: str) -> Run:
        """The run `name`; NotRun when the program could not start."""
        if name not in self.runs:
            self.runs[name] = self._make(name)
        run = self.runs[name]
        if run.code == 127 and not run.stdout and not run.hits and not run.files:
            raise NotRun(f"the program could not be started: {run.stderr.strip()[:300]}")
        return run

    def _make(self, name: str) -> Run:
        quiet = QUIET if any(r.timed_out for r in self.runs.values()) else 0.0
        run = partial(run_under_box, self.box, self.program, name, quiet=quiet)
        if name == "clean":
            return run(csv_text(clean_list()), LIMIT)
        if name == "faults":
            return run(csv_text(faults_list()), FAULTS_LIMIT)
        if name == "bound":
            return run(csv_text(bound()), LIMIT, n=str(BOUND_N))
        if name == "names":
            return run(csv_text(names()), LIMIT)
        if name == "header":
            return run(csv_text(clean()[:3], header=True), LIMIT)
        if name == "no-folder":
            return run(csv_text(clean()[:2]), LIMIT, folder="new/images", make_folder=False)
        if name == "usage":
            return run(csv_text(clean()[:2]), LIMIT, n="0")
        if name == "resume":
            first, second = (body("large.jpg", url) for url in RESUMED)
            return run("".join(f"{url}\n" for url in RESUMED), LIMIT,
                       prepared={"large.jpg.part": first[:PART], "whole.jpg.part": second[:PART]})
        raise KeyError(name)

    def fail(self, run: Run, message: str, expected: str, actual: str = "") -> CheckFailure:
        """A failure about one run."""
        return CheckFailure(f"{run.name} run: {message}", expected=expected,
                            actual=run.actual(actual), reproduce=run.reproduce(self.line))


@pytest.fixture(scope="session")
def seen(program: ProgramTarget) -> Iterator[Seen]:
    """The box for this suite run."""
    with started_box("downloader", lambda folder: Box(sites(), folder)) as box:
        yield Seen(box, program)



def problems(run: Run, images: list[Image]) -> list[str]:
    """Each image missing from the folder, or there with other bytes."""
    out = []
    for image in images:
        data = run.files.get(image.name)
        if data is None:
            out.append(f"{image.name} missing")
        elif data != image.body:
            out.append(f"{image.name} has {len(data):,} bytes, not the {len(image.body or b''):,}"
                       f" served" if len(data) != len(image.body or b"")
                       else f"{image.name} differs from what was served")
    return out


def missing(run: Run, images: list[Image]) -> list[str]:
    """Each image whose bytes are in no file of the folder (under any name: the name is
    DL-02's)."""
    kept = set(run.files.values())
    return [f"{image.name} ({len(image.body or b''):,} bytes)" for image in images
            if image.body not in kept]


def attempted(seen: Seen, run: Run, image: Image) -> bool:
    """Whether the program went for an image: the box saw its request, or, for a host whose
    name does not resolve, a DNS query for that name."""
    host, _, path = image.url.split("://", 1)[1].partition("/")
    if any(h.path.split("?", 1)[0] == "/" + path.split("?", 1)[0] and h.site == host
           for h in run.hits):
        return True
    return any(q.name.rstrip(".").lower() == host and q.arrival >= run.started
               for q in seen.box.queries())


def mentioned(run: Run, image: Image) -> bool:
    """Whether the program's output names an image (its URL or its file name)."""
    return image.url in run.output or image.name in run.output


# -- MUST ----------------------------------------------------------------------------------------


@requirement("DL-01")
def test_downloads_and_ends(seen: Seen, note: Callable[[str], None]) -> None:
    """The program takes its arguments, downloads and ends by itself."""
    run = seen.run("clean")
    if run.timed_out:
        raise seen.fail(run, f"the program did not end within {run.limit:g} s",
                        "the program ends by itself once every image is downloaded")
    if not run.hits:
        raise seen.fail(run, "the box received no request",
                        f"a GET for each of the {len(clean())} URLs of {run.csv and 'the CSV'}")
    note(f"clean run: the program {run.ending()}")


@requirement("DL-02")
def test_every_image_whole(seen: Seen) -> None:
    """Every image of the list is in the folder, byte-identical, named by its URL."""
    run = seen.run("clean")
    wrong = problems(run, clean())
    if wrong:
        raise seen.fail(run, shown(wrong), "each of the 12 images in the folder under the "
                        "last segment of its URL's path, byte for byte as served")


@requirement("DL-03")
def test_at_most_n_at_once(seen: Seen, note: Callable[[str], None]) -> None:
    """At most N downloads in flight at once."""
    run = seen.run("bound")
    note(f"bound run: at most {run.peak_answering} answers in flight at once (N {BOUND_N}), "
         f"{run.seconds:.1f} s for {BOUND_IMAGES} images of {PACE:g} s each")
    if run.peak_answering > BOUND_N:
        raise seen.fail(run, f"the box had {run.peak_answering} answers on their way at once",
                        f"at most {BOUND_N} (N) at once")


@requirement("DL-04")
def test_downloads_overlap(seen: Seen) -> None:
    """More than one download at once, and the whole well under sequential time."""
    run = seen.run("bound")
    sequential = BOUND_IMAGES * PACE
    expected = (f"at least 2 answers on their way at once, and the {BOUND_IMAGES} images "
                f"within {sequential / 2:g} s (one at a time takes {sequential:g} s)")
    if run.peak_answering < 2:
        raise seen.fail(run, "the box never had two answers on their way at once", expected)
    asked = [h.at for h in run.hits if h.path.startswith("/b/")]
    # From the first request to the last answer's end, as the box saw them: the program's
    # own start and end are not the downloads'.
    span = max(asked) - min(asked) + PACE if asked else 0.0
    if len(asked) < BOUND_IMAGES or span > sequential / 2:
        raise seen.fail(run, f"{len(asked)} images asked for over {span:.1f} s", expected)


@requirement("DL-05")
def test_failures_stop_nothing(seen: Seen) -> None:
    """Whatever fails, every image that can be had is downloaded."""
    run = seen.run("faults")
    healthy, failing, _ = faults()
    wrong = missing(run, healthy)
    if wrong:
        raise seen.fail(run, shown(wrong), "each of the 6 healthy images whole in the folder, "
                        "whatever failed beside it (" + "; ".join(
                            f"{f.name}: {f.why}" for f in failing) + ")")


@requirement("DL-06")
def test_failures_are_reported(seen: Seen) -> None:
    """Each failure is named in the output, and no traceback."""
    run = seen.run("faults")
    _, failing, _ = faults()
    # Only what it went for: a program that stops at the first failure is DL-05's.
    silent = [f"{f.name} ({f.why}" + (", still waited for when the program was stopped)"
                                      if run.timed_out else ")")
              for f in failing if attempted(seen, run, f) and not mentioned(run, f)]
    expected = ("each URL that failed named in the output (its URL or file name), no "
                "traceback")
    if run.traceback:
        raise seen.fail(run, "the program printed a traceback", expected)
    if silent:
        raise seen.fail(run, f"nothing said of {shown(silent)}", expected)


@requirement("DL-07")
def test_nothing_partial_under_a_name(seen: Seen) -> None:
    """No failed image's part under its final name."""
    run = seen.run("faults")
    _, failing, _ = faults()
    left = [f"{f.name} ({len(run.files[f.name]):,} bytes; {f.why})" for f in failing
            if f.name in run.files]
    if left:
        raise seen.fail(run, f"the folder holds {shown(left)}",
                        "no file under the name of an image that failed")


@requirement("DL-08")
def test_progress_is_logged(seen: Seen) -> None:
    """The output names each image as it is done."""
    run = seen.run("clean")
    silent = [i.name for i in clean() if not mentioned(run, i)]
    if silent:
        raise seen.fail(run, f"the output never names {shown(silent)}",
                        "each image named in the output (its URL or file name) as it is done")


@requirement("DL-17")
def test_redirects_are_followed(seen: Seen) -> None:
    """An image behind a redirect is downloaded."""
    run = seen.run("clean")
    image = moved()
    if image.body not in set(run.files.values()):
        asked = [h.path for h in run.hits if h.path.endswith("/moved.png")]
        raise seen.fail(run, f"no file holds {image.name} (the box saw requests for "
                        f"{', '.join(asked) or 'neither URL'})",
                        f"{image.url}, which answers 301 to {MOVED[1]}, downloaded")


# -- SHOULD and MAY -------------------------------------------------------------------------------


@requirement("DL-09")
def test_no_temporary_file_left(seen: Seen) -> None:
    """No temporary file left in the folder."""
    left: list[str] = []
    for name in ("clean", "faults"):
        run = seen.run(name)
        left += [f"{f} ({name} run)" for f in run.files
                 if f.lower().endswith(TEMPORARY) or f.startswith(".")]
    if left:
        run = seen.run("faults")
        raise seen.fail(run, f"the folder holds {shown(left)}",
                        "no temporary file once the program ended")


@requirement("DL-10")
def test_header_and_blank_lines(seen: Seen) -> None:
    """A header line and blank lines do not disturb the list."""
    run = seen.run("header")
    wrong = missing(run, clean()[:3])
    asked = [h.path for h in run.hits if h.path.strip("/") == "url"]
    if wrong or asked:
        raise seen.fail(run, shown(wrong) or "the header was fetched as a URL",
                        "the 3 images of a CSV with a header line `url` and blank lines")


@requirement("DL-11")
def test_missing_folder_is_created(seen: Seen) -> None:
    """A folder that does not exist is created."""
    run = seen.run("no-folder")
    wrong = missing(run, clean()[:2])
    if not run.folder_exists or wrong:
        raise seen.fail(run, "no folder new/images" if not run.folder_exists else shown(wrong),
                        "the folder new/images created, the 2 images in it")


@requirement("DL-12")
def test_zero_n_is_refused(seen: Seen) -> None:
    """N of 0 is refused before any download."""
    run = seen.run("usage")
    expected = "a non-zero exit status, a short message, no traceback, no download"
    lines = [x for x in run.output.splitlines() if x.strip()]
    if run.timed_out:
        raise seen.fail(run, "the program did not end", expected)
    if run.traceback:
        raise seen.fail(run, "the program printed a traceback", expected)
    if run.hits:
        raise seen.fail(run, f"the program downloaded with N 0 ({len(run.hits)} requests)",
                        expected)
    if run.code == 0 or not lines or len(lines) > 4:
        raise seen.fail(run, f"exit status {run.code}, {len(lines)} lines said", expected)


@requirement("DL-13")
def test_names_do_not_collide(seen: Seen) -> None:
    """Two URLs with one file name keep both images; a URL listed twice is one whole file."""
    run = seen.run("names")
    one, two, _, cat, _ = names()
    kept = set(run.files.values())
    wrong = [f"{i.url}'s image ({len(i.body or b''):,} bytes)" for i in (one, two)
             if i.body not in kept]
    if cat.body not in kept:
        wrong.append(f"{cat.name} (listed twice) not whole")
    if wrong:
        raise seen.fail(run, f"the folder lacks {shown(wrong)}",
                        "both photo.jpg images kept (one under another name), cat.png whole")


@requirement("DL-14")
def test_query_is_not_in_the_name(seen: Seen) -> None:
    """A URL with a query is saved under its path's last segment."""
    run = seen.run("names")
    image = names()[2]
    if run.files.get(image.name) != image.body:
        raise seen.fail(run, f"no whole {image.name}", f"{image.url} saved as {image.name}")


@requirement("DL-15")
def test_not_an_image_is_not_saved(seen: Seen) -> None:
    """An HTML page under .jpg is not saved as the image, and is reported."""
    run = seen.run("faults")
    _, _, page = faults()
    if page.name not in run.files and not attempted(seen, run, page):
        raise NotRun(f"the program never asked for {page.name} (DL-05 judges what it left)")
    if page.name in run.files or not mentioned(run, page):
        raise seen.fail(run, f"{page.name} " + ("saved" if page.name in run.files
                                                else "not reported"),
                        f"{page.name} (an HTML page answered 200) not saved, and reported")


@requirement("DL-16")
def test_partial_files_are_resumed(seen: Seen) -> None:
    """An earlier run's .part is resumed by Range, and ends whole either way."""
    run = seen.run("resume")
    wanted = dict(zip(("large.jpg", "whole.jpg"), (body("large.jpg", u) for u in RESUMED),
                      strict=True))
    ranged = [h for h in run.hits if h.header("Range")]
    expected = (f"a Range request for the rest of each .part ({PART:,} bytes there), and "
                f"large.jpg and whole.jpg whole ({len(wanted['large.jpg']):,} bytes; the "
                f"second's server answers 200, ignoring Range)")
    if not ranged:
        raise NotImplementedFeature("resume run: no request asked for a Range",
                                    expected=expected, actual=run.actual(),
                                    reproduce=run.reproduce(seen.line))
    wrong = [f"{n} has {len(run.files.get(n, b'')):,} bytes" if n in run.files else
             f"{n} missing" for n, data in wanted.items() if run.files.get(n) != data]
    if wrong:
        raise seen.fail(run, shown(wrong), expected)
