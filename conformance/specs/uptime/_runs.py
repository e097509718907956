"""One run of an uptime monitor in the box: the CSV written as `sites.csv` in its working folder,
the alert services up under their names, the program started, the sites' answers changed on
the timeline (conformance/specs/uptime/_world.py), Ctrl+C at its end; what it left: every line
it printed with when it came, its files, the box's requests and what each alert service got.

Rules: the program is started as every target is (the launcher, `target_env()`, its working
folder) under the box, with `PYTHONUNBUFFERED=1` (lines come when printed) and `TZ=UTC`;
stdout and stderr share one pipe, read by a thread of ours line by line (never a pipe that
could fill). Switches happen on the suite's clock; `Run.switched` holds when each one took
hold. A program that ends before the timeline does is not started again: the run is judged
as far as it went. Every wait is bounded; the process group is gone at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance._alerts import (
    BotAccount,
    Chat,
    MailAccount,
    Recorder,
    SmtpAlertEnd,
    WebhookRecorder,
    create_botapi_app,
    create_webhook_app,
)
from conformance._box import Answer, Box, Hit, Port
from conformance._box import Site as BoxSite
from conformance._client_run import TRACEBACK, output_ends
from conformance._isolation import limit_hit, target_env
from conformance._servers import SocketAppServer
from conformance._target import ProgramTarget, stop_group
from conformance._telegram import Scenario, Telegrams
from conformance.specs.uptime._alerts_seen import Alert, collect
from conformance.specs.uptime._telegram_world import world as telegram_world
from conformance.specs.uptime._world import (
    BOT_ID,
    BOT_USERNAME,
    INTERVAL,
    MOVED_TO,
    SITES,
    SLOW_SECONDS,
    SMTP_HOST,
    SMTP_USER,
    STOP_AT,
    STOP_GRACE,
    TELEGRAM_API,
    WEBHOOK_HOST,
    WEBHOOK_URL,
    State,
    csv_text,
)

CSV = "sites.csv"
SETTLE = 0.3  # seconds after the program's end before reading what the services got
MAX_LINES = 20_000  # lines of output kept (a monitor printing every check makes a few hundred)
START_EPOCH = 1_780_000_000  # when the contacts wrote /start to the bot (any past time)


def answer_of(state: State) -> Answer | Port:
    """What the box serves for a site in `state`."""
    answers: dict[str, Answer | Port] = {
        "up": Answer(), "502": Answer(status=502), "503": Answer(status=503),
        "refused": Port.REFUSED, "hangs": Port.SILENT, "head-405": Answer(head_differs=True),
        "slow": Answer(delay=SLOW_SECONDS),
        "moved": Answer(redirect=f"https://{MOVED_TO}")}
    return answers[state]


def plan() -> list[BoxSite]:
    """The box's sites: the CSV's, as they start, and the alert services' names."""
    sites = [BoxSite(s.domain, http=answer_of(s.phases[0].state),
                     https=answer_of(s.phases[0].state)) for s in SITES]
    return [*sites, BoxSite(TELEGRAM_API, https=Port.ELSEWHERE), BoxSite(SMTP_HOST),
            BoxSite(WEBHOOK_HOST, http=Port.ELSEWHERE)]


def timeline() -> list[tuple[float, str, State]]:
    """Every switch of the run: (seconds from the start, domain, new state), in order."""
    events = [(phase.start, s.domain, phase.state) for s in SITES for phase in s.phases[1:]]
    return sorted(events)


def command_line(program: ProgramTarget) -> list[str]:
    """The program's argv (`{csv}`, `{interval}`, else appended in that order)."""
    return program.filled({"csv": CSV, "interval": f"{INTERVAL:g}"}, ("csv", "interval"))


@dataclass(frozen=True)
class Line:
    """A line the program printed (stdout or stderr) and when it came (time.monotonic())."""

    at: float
    text: str


@dataclass
class Run:
    """What one run of the monitor showed."""

    argv: list[str]
    started: float = 0.0  # time.monotonic() when the program was started
    lines: list[Line] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # text files it wrote in its folder
    hits: list[Hit] = field(default_factory=list)
    switched: list[tuple[float, str, State]] = field(default_factory=list)  # (at, domain, state)
    ended_at: float | None = None  # time.monotonic() when it ended by itself, before Ctrl+C
    code: int | None = None  # its exit status (None: killed, or never ended)
    interrupted: bool = False  # Ctrl+C was sent
    stop_seconds: float | None = None  # from Ctrl+C to its end (None: it did not end)
    could_not_start: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # name -> value given to it
    alerts: list[Alert] = field(default_factory=list)  # what the alert services got

    @property
    def output(self) -> str:
        """Everything it printed."""
        return "\n".join(line.text for line in self.lines)

    def at(self, seconds: float) -> float:
        """time.monotonic() of `seconds` into the run."""
        return self.started + seconds

    def since(self, moment: float) -> float:
        """Seconds into the run of time.monotonic() `moment`."""
        return moment - self.started

    @property
    def traceback(self) -> bool:
        """Whether it printed a traceback."""
        return TRACEBACK in self.output

    def ending(self) -> str:
        """How it ended, in words."""
        if self.ended_at is not None:
            return (f"ended by itself {self.since(self.ended_at):.1f} s after its start, "
                    f"exit status {self.code}")
        if self.stop_seconds is None:
            return (f"did not end within {STOP_GRACE:g} s of Ctrl+C (at {STOP_AT:g} s) and "
                    f"was killed")
        return f"ended {self.stop_seconds:.1f} s after Ctrl+C, exit status {self.code}"

    def actual(self, extra: str = "") -> str:
        """What the run did, for a failure's `actual`."""
        parts = [extra] if extra else []
        parts.append(f"the program {self.ending()}")
        return "; ".join(parts + output_ends(self.output, ""))

    def reproduce(self, spec_line: str) -> str:
        """How to repeat it: the suite's line and the command it ran."""
        return (f"{spec_line}  # one {STOP_AT:g} s run: {CSV} as the seed writes it, N = "
                f"{INTERVAL:g} s, the sites' answers changed on the timeline in "
                f"conformance/specs/uptime/_world.py; the program ran as: "
                f"{shlex.join(self.argv)}")


def _updates() -> tuple[dict[str, Any], ...]:
    """The /start message each contact sent the bot, as getUpdates hands them out."""
    out = []
    for i, s in enumerate(SITES):
        c = s.contact
        person = {"id": c.user_id, "first_name": c.first_name, "username": c.username}
        out.append({"message": {"message_id": i + 1, "date": START_EPOCH + i,
                                "from": {**person, "is_bot": False, "language_code": "ru"},
                                "chat": {**person, "type": "private"}, "text": "/start",
                                "entities": [{"type": "bot_command", "offset": 0,
                                              "length": 6}]}})
    return tuple(out)


class Ends:
    """The alert services of one suite run, each under its name in the box: the Bot API, the
    mail server, the webhook and our Telegram for a user's account (under `python`, the
    program's own interpreter when it has Telethon)."""

    def __init__(self, box: Box, python: str) -> None:
        self.box = box
        self.token = f"{BOT_ID}:{secrets.token_urlsafe(26)}"
        self.mail = MailAccount(SMTP_USER, secrets.token_urlsafe(12))
        self.bot_recorder = Recorder()
        self.webhook = WebhookRecorder()
        self.smtp: SmtpAlertEnd | None = None
        self.telegrams = Telegrams(python, [Scenario("alerts")], world_data=telegram_world())
        self._servers: list[SocketAppServer] = []
        self.telegram_problem = ""

    def start(self) -> None:
        """Start every service (OSError when one cannot; our Telegram's failure is kept in
        `telegram_problem`: the other channels still work)."""
        box = self.box
        chats = [Chat(s.contact.user_id, "private", username=s.contact.username,
                      first_name=s.contact.first_name, open_to=frozenset({BOT_USERNAME}))
                 for s in SITES]
        app = create_botapi_app({self.token: BotAccount(BOT_ID, BOT_USERNAME,
                                                        updates=_updates())}, chats,
                                recorder=self.bot_recorder)
        self._servers = [
            SocketAppServer(app, [(box.listen(TELEGRAM_API, 443), box.tls_context(TELEGRAM_API))],
                            name="bot-api"),
            SocketAppServer(create_webhook_app(self.webhook),
                            [(box.listen(WEBHOOK_HOST, 80), None)], name="webhook")]
        for server in self._servers:
            server.start()
        assert box.tls is not None
        recipients = [s.contact.email for s in SITES if s.contact.email_ok]
        self.smtp = SmtpAlertEnd(self.mail, ca=box.tls.ca, recipients=recipients,
                                 host=box.site(SMTP_HOST).address, smtps_port=465,
                                 submission_port=587, names=(SMTP_HOST,),
                                 server_name=SMTP_HOST).start()
        try:
            self.telegrams.start()
        except Exception as exc:  # ServerUnavailable, or a start that failed otherwise
            self.telegram_problem = str(exc)

    def stop(self) -> None:
        """Stop every service (idempotent); what they recorded stays readable."""
        for server in self._servers:
            server.stop()
        if self.smtp is not None:
            self.smtp.stop()
        self.telegrams.stop()

    def env(self) -> dict[str, str]:
        """The variables a monitor is given (conformance/specs/uptime's README section)."""
        env = {"TELEGRAM_BOT_TOKEN": self.token, "SMTP_HOST": SMTP_HOST, "SMTP_PORT": "465",
               "SMTP_USER": self.mail.user, "SMTP_PASSWORD": self.mail.password,
               "SMTP_FROM": self.mail.user, "ALERT_WEBHOOK_URL": WEBHOOK_URL}
        if self.telegrams.ready:
            env |= self.telegrams.env("alerts")
        return env

    def secrets(self) -> dict[str, str]:
        """What must not be printed, by the variable's name."""
        env = self.env()
        return {name: env[name] for name in ("TELEGRAM_BOT_TOKEN", "SMTP_PASSWORD", "TG_SESSION",
                                             "TG_API_HASH") if env.get(name)}

    def alerts(self) -> list[Alert]:
        """Every alert every service got so far, oldest first, on time.monotonic()'s clock."""
        calls: list[dict[str, Any]] = []
        started = None
        if not self.telegram_problem and self.telegrams.ready:
            calls = self.telegrams.calls("alerts")
            started = self.telegrams.ready["runs"]["alerts"].get("started")
        smtp = self.smtp
        return collect(arrivals=self.bot_recorder.arrivals(),
                       mails=smtp.mails() if smtp is not None else [],
                       refusals=smtp.refusals() if smtp is not None else [],
                       calls=calls if started is not None else [], telegram_started=started,
                       hits=self.webhook.hits())


def run_monitor(box: Box, ends: Ends, program: ProgramTarget) -> Run:
    """Run the monitor once through the whole timeline (see the module's rules)."""
    work = program.workdir or Path.cwd()
    work.mkdir(parents=True, exist_ok=True)
    (work / CSV).write_text(csv_text(), encoding="utf-8")
    before = {p for p in work.rglob("*") if p.is_file()}
    run = Run(command_line(program), secrets=ends.secrets())
    env = target_env({**os.environ, **box.env(), **ends.env(), "PYTHONUNBUFFERED": "1",
                      "TZ": "UTC"})
    if box.hosts is not None:
        box.hosts.reset()
    try:
        popen = subprocess.Popen(box.command(run.argv, work), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env, cwd=work)
    except OSError as exc:
        run.could_not_start = f"cannot start {run.argv[0]}: {exc}"
        return run
    run.started = time.monotonic()
    reader = threading.Thread(target=_read_lines, args=(popen, run.lines), daemon=True)
    reader.start()
    try:
        for seconds, domain, state in timeline():
            if not _wait_until(popen, run.at(seconds)):
                break
            run.switched.append((box.switch(domain, answer_of(state)), domain, state))
        if _wait_until(popen, run.at(STOP_AT)):
            run.interrupted = True
            asked = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGINT)
            try:
                run.code = popen.wait(timeout=STOP_GRACE)
                run.stop_seconds = time.monotonic() - asked
            except subprocess.TimeoutExpired:
                stop_group(popen, grace=1.0)
        else:
            run.ended_at = time.monotonic()
            run.code = popen.returncode
    finally:
        if popen.poll() is None:
            stop_group(popen, grace=1.0)
        with contextlib.suppress(OSError, ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)  # what it left behind in its group
        reader.join(2.0)
        if popen.stdout is not None:
            popen.stdout.close()
    limit_hit(run.code, "\n".join(line.text for line in run.lines[-40:]))
    time.sleep(SETTLE)  # an alert sent as it stopped is still arriving
    run.hits = box.hosts.seen() if box.hosts is not None else []
    run.alerts = ends.alerts()
    for path in sorted(work.rglob("*")):
        if path.is_file() and path not in before and "__pycache__" not in path.parts:
            with contextlib.suppress(OSError):
                data = path.read_bytes()[:1 << 20]
                if b"\0" not in data[:4096]:
                    run.files[path.relative_to(work).as_posix()] = data.decode("utf-8", "replace")
    return run


def _wait_until(popen: subprocess.Popen[bytes], moment: float) -> bool:
    """Sleep until time.monotonic() `moment`; False as soon as the program has ended."""
    while True:
        if popen.poll() is not None:
            return False
        left = moment - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))


def _read_lines(popen: subprocess.Popen[bytes], lines: list[Line]) -> None:
    assert popen.stdout is not None
    for raw in popen.stdout:
        if len(lines) < MAX_LINES:
            lines.append(Line(time.monotonic(), raw.decode("utf-8", "replace").rstrip("\r\n")))

