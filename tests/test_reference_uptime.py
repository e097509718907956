"""The reference site monitor (reference/uptime.py): its CSV reading, its status rules, and whole
runs as a subprocess against sites on 127.0.0.1 whose answers the test flips while it runs, with
our alert ends (conformance/_alerts: the Bot API over plain HTTP, SMTP with a trustme CA, the
webhook) recording what it sends."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import trustme
from aiohttp import web

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
from conformance._servers import AiohttpServer
from conformance.specs.uptime._world import SITES, csv_text
from reference.uptime import (
    AlertError,
    Lines,
    Mail,
    Monitor,
    Row,
    Site,
    Telegram,
    arguments,
    environment,
    parse_rows,
)
from tests.conftest import PY, ROOT

SCRIPT = ROOT / "reference" / "uptime.py"
INTERVAL = 0.25
WAIT = 10.0  # the longest any one thing is waited for
DELAYS = {"slow": 0.15, "sluggish": 0.3, "hangs": 3.0}  # seconds a site takes to answer
TOKEN = "6100000001:AAH-uptime-secret-token"
PASSWORD = "smtp-secret-pa55"
BOT = "uptime_alerts_bot"
ACCOUNT = MailAccount("monitor@alerts.test", PASSWORD)
PEOPLE = {"shop_boris": 7100002, "api_vera": 7100003, "late_dina": 7100005,
          "head_egor": 7100006, "mizulina": 7100009}  # each started the bot; ghost_user did not


# -- local sites and alert ends ----------------------------------------------------------------

class Served(AiohttpServer):
    """An aiohttp application served from a thread on 127.0.0.1, every request recorded."""

    def __init__(self, make: Callable[[], web.Application]) -> None:
        super().__init__()
        self.make = make

    def _app(self) -> web.Application:
        return self.make()


def sites_app(states: dict[str, str]) -> web.Application:
    """`/NAME` answers as `states[NAME]` says at that moment: a status code, `head-405` (HEAD
    refused, GET 200), or 200 after a while: `slow` (0.15 s), `sluggish` (0.3 s), `hangs` (3 s)."""

    async def answer(request: web.Request) -> web.Response:
        state = states[request.match_info["name"]]
        if state == "head-405":
            return web.Response(status=405 if request.method == "HEAD" else 200)
        if state in DELAYS:
            await asyncio.sleep(DELAYS[state])
            return web.Response(status=200)
        return web.Response(status=int(state))

    app = web.Application()
    app.router.add_route("*", "/{name}", answer)
    return app


def updates() -> tuple[dict[str, Any], ...]:
    """The /start message each person sent the bot, as getUpdates gives it."""
    return tuple({"message": {"message_id": 1, "date": 1_700_000_000, "text": "/start",
                              "from": {"id": uid, "is_bot": False, "first_name": name,
                                       "username": name},
                              "chat": {"id": uid, "type": "private", "username": name}}}
                 for name, uid in PEOPLE.items())


class Run:
    """The reference as a subprocess in a session of its own, its output read line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("TELEGRAM_", "SMTP_", "ALERT_"))}
        self.proc = subprocess.Popen(
            [PY, str(SCRIPT), *args], cwd=cwd, env={**clean, **env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1) -> list[str]:
        """The lines matching `pattern`, once there are `count` of them (fails after WAIT s)."""
        found: list[str] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if re.search(pattern, line)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        pytest.fail(f"no {count} lines matching {pattern!r} in:\n{self.output}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Signal the process group, as Ctrl+C does; the exit status."""
        os.killpg(self.proc.pid, signum)
        code = self.proc.wait(WAIT)
        self.reader.join(WAIT)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(WAIT)


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (WAIT s at most) until `condition()` holds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT:g} s: {what}")
        time.sleep(0.05)


def refused_port() -> int:
    """A port of 127.0.0.1 where nothing listens (bound and let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", name="ca")
def fixture_ca() -> trustme.CA:
    return trustme.CA()


# -- the CSV and the command line --------------------------------------------------------------

def test_the_seeds_csv_is_read_and_its_bad_e_mail_warned_about() -> None:
    rows, warnings = parse_rows(csv_text())
    assert len(rows) == len(SITES) and rows[0] == Row("example.com", "https://example.com/",
                                             "@ops_anna", "anna@ops.example")
    assert rows[-1] == Row("mizulina.ru", "https://mizulina.ru/", "@mizulina", None)
    assert warnings == [f"line {len(SITES) + 1}: e-mail 'mizulin' has no @; no e-mail alerts "
                        f"for mizulina.ru"]


def test_urls_separators_comments_and_bad_rows() -> None:
    text = ("# sites\nDOMAIN_NAME;tg_username,email\n\nhttp://127.0.0.1:8081/;12345;a@b.c\n"
            ",@nobody,x@y.z\nExample.COM.;@ann;\nnot a site!,@ann,\nexample.com,@bob,b@b.b\n"
            "b.org,@x y,\n")
    rows, warnings = parse_rows(text)
    assert rows == [Row("http://127.0.0.1:8081/", "http://127.0.0.1:8081/", "12345", "a@b.c"),
                    Row("example.com", "https://example.com/", "@ann", None),
                    Row("b.org", "https://b.org/", None, None)]
    assert warnings == [
        "line 5: no domain, row skipped",
        "line 7: 'not a site!' is not a domain or an http(s) URL, row skipped",
        "line 8: example.com is listed already, row skipped",
        "line 9: '@x y' is not a Telegram username or chat id; no Telegram alerts for b.org"]


@pytest.mark.parametrize("argv", [[], ["sites.csv"], ["sites.csv", "0"], ["sites.csv", "x"],
                                  ["sites.csv", "1", "--failures", "0"],
                                  ["sites.csv", "1", "--timeout", "-1"], ["missing.csv", "1"],
                                  ["empty.csv", "1"], ["sites.csv", "1", "--config", "bad.toml"],
                                  ["sites.csv", "1", "--config", "missing.toml"]])
def test_a_bad_command_line_exits_2_with_the_usage(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sites.csv").write_text("example.com,@ann,a@b.c\n")
    (tmp_path / "empty.csv").write_text("DOMAIN_NAME;tg_username,email\n")
    (tmp_path / "bad.toml").write_text("SMTP_HOST = \n")
    with pytest.raises(SystemExit) as exit_:
        arguments(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: uptime") and "error:" in err and "Traceback" not in err


def test_settings_come_from_a_toml_file_and_the_environment_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sites.csv").write_text("example.com,@ann,a@b.c\n")
    (tmp_path / "alerts.toml").write_text('smtp_host = "smtp.file.test"\nSMTP_PORT = 587\n'
                                          'TELEGRAM_BOT_TOKEN = "1:file"\n')
    options = arguments([str(tmp_path / "sites.csv"), "1", "--config",
                         str(tmp_path / "alerts.toml")])
    assert options.settings == {"SMTP_HOST": "smtp.file.test", "SMTP_PORT": "587",
                                "TELEGRAM_BOT_TOKEN": "1:file"}
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "2:environment")
    env = environment(options)
    assert env["TELEGRAM_BOT_TOKEN"] == "2:environment" and env["SMTP_PORT"] == "587"


def test_a_bad_command_line_as_a_program(tmp_path: Path) -> None:
    done = subprocess.run([PY, str(SCRIPT), "nowhere.csv", "1"], cwd=tmp_path, timeout=WAIT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot read nowhere.csv: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr


# -- the status rules, without a network -------------------------------------------------------

class Noting(Monitor):
    """A Monitor of one site, K = 2, that notes its alerts' headlines instead of sending them
    (it has no session: it is handed outcomes, it checks nothing)."""

    def __init__(self, name: str) -> None:
        super().__init__(cast(aiohttp.ClientSession, None),
                         [Row(name, f"https://{name}/", "@ann", None)], INTERVAL, 5.0, 2, [])
        self.noted: list[str] = []

    def alert(self, site: Site, event: str, headline: str, status: str, previous: str) -> None:
        self.noted.append(headline)


def test_a_site_is_down_after_k_failed_slots_and_alerted_once(
        caplog: pytest.LogCaptureFixture) -> None:
    monitor = Noting("a.test")
    site = monitor.sites[0]
    with caplog.at_level(logging.INFO, logger="uptime"):
        for up, status, spanned, first in [
                (True, "200", 1, True), (False, "502", 1, False), (True, "200", 1, False),
                (False, "502", 1, False), (False, "502", 1, False), (False, "502", 1, False),
                (False, "503", 1, False), (True, "200", 1, False),
                (False, "timeout after 5 s", 21, False), (True, "301", 1, False)]:
            monitor.record(site, up, status, spanned, first)
    assert caplog.messages == ["a.test: up (200)", "a.test: 200 -> 502 (down)",
                               "a.test: 502 -> 503 (down)", "a.test: 503 -> 200 (up)",
                               "a.test: 200 -> timeout after 5 s (down)",
                               "a.test: timeout after 5 s -> 301 (up)"]
    assert monitor.noted == [
        "ALERT: a.test is DOWN (502; was 200)", "RECOVERED: a.test is up again (200)",
        "ALERT: a.test is DOWN (timeout after 5 s; was 200)",
        "RECOVERED: a.test is up again (301)"]


def test_a_site_down_from_the_start_is_logged_not_alerted(
        caplog: pytest.LogCaptureFixture) -> None:
    monitor = Noting("b.test")
    with caplog.at_level(logging.INFO, logger="uptime"):
        for up, status, first in [(False, "connection refused", True), (False, "502", False),
                                  (True, "200", False)]:
            monitor.record(monitor.sites[0], up, status, 1, first)
    assert caplog.messages == ["b.test: down (connection refused)",
                               "b.test: connection refused -> 502 (down)",
                               "b.test: 502 -> 200 (up)"]
    assert monitor.noted == []


def test_mail_over_implicit_tls(ca: trustme.CA, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The whole runs use STARTTLS (a free port, not 465); SMTPS is taken here.
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    with SmtpAlertEnd(ACCOUNT, ca=ca, recipients=["anna@ops.example"]) as end:
        mail = Mail("127.0.0.1", end.smtps_port, ACCOUNT.user, PASSWORD, ACCOUNT.user)
        mail.implicit_tls = True
        mail.deliver("anna@ops.example", "ALERT: a.test is DOWN", "a.test is down\n")
        [got] = end.wait_for_mails(1, WAIT)
    assert (got.listener, got.tls, got.auth_user, got.rcpt_tos) == (
        "smtps", True, ACCOUNT.user, ("anna@ops.example",))
    assert got.subject == "ALERT: a.test is DOWN"


def test_no_secret_in_an_error_or_a_log_line() -> None:
    # aiohttp's error would name the URL, token and all; the reference says what happened.
    async def call() -> str:
        async with aiohttp.ClientSession() as session:
            bot = Telegram(session, TOKEN, f"http://127.0.0.1:{refused_port()}")
            with pytest.raises(AlertError) as failed:
                await bot.call("getMe")
            return str(failed.value)

    assert asyncio.run(call()) == "connection refused"
    record = logging.LogRecord("uptime", logging.WARNING, __file__, 1, "url %s/bot%s/getMe",
                               ("https://api.telegram.org", TOKEN), None)
    line = Lines([TOKEN, PASSWORD]).format(record)
    assert line.endswith(" warning: url https://api.telegram.org/bot***/getMe"), line


# -- whole runs --------------------------------------------------------------------------------

@pytest.fixture(name="ends")
def fixture_ends(ca: trustme.CA, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The three alert ends, served, and the environment that names them."""
    telegram = Recorder()
    chats = [Chat(uid, username=name, first_name=name, open_to=frozenset({BOT}))
             for name, uid in PEOPLE.items()]
    bot = BotAccount(6100000001, BOT, updates=updates())
    hooks = WebhookRecorder()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    mailboxes = ["boris@shop.example", "vera@api.example", "gleb@ghost.example",
                 "dina@late.example", "egor@head.example"]
    with (Served(lambda: create_botapi_app({TOKEN: bot}, chats, recorder=telegram)) as api,
          Served(lambda: create_webhook_app(hooks)) as hook,
          SmtpAlertEnd(ACCOUNT, ca=ca, recipients=mailboxes) as smtp):
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api.base_url,
               "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.submission_port),
               "SMTP_USER": ACCOUNT.user, "SMTP_PASSWORD": PASSWORD, "SMTP_FROM": ACCOUNT.user,
               "SSL_CERT_FILE": str(tmp_path / "ca.pem"),
               "ALERT_WEBHOOK_URL": f"{hook.base_url}/uptime"}
        yield {"env": env, "telegram": telegram, "smtp": smtp, "hooks": hooks}


def test_one_alert_per_down_to_its_contact_on_every_channel(
        ends: dict[str, Any], tmp_path: Path) -> None:
    states = {"shop": "200", "ghost": "200", "late": "502", "head": "head-405", "miz": "200"}
    with Served(lambda: sites_app(states)) as sites, \
            Served(lambda: sites_app({"api": "200"})) as api_site:
        base, api = sites.base_url, f"{api_site.base_url}/api"
        (tmp_path / "sites.csv").write_text(
            "DOMAIN_NAME;tg_username,email\n"
            f"{base}/shop,@shop_boris,boris@shop.example\n{api},7100003,vera@api.example\n"
            f"{base}/ghost;@ghost_user;gleb@ghost.example\n"
            f"{base}/late,@late_dina,dina@late.example\n"
            f"{base}/head,@head_egor,egor@head.example\n{base}/miz,@mizulina,mizulin\n")
        run = Run(["sites.csv", str(INTERVAL), "--timeout", "1"], ends["env"], tmp_path)
        try:
            run.wait_for(r"Z http://\S+: (up|down) \(", count=6)
            states["shop"], states["ghost"] = "502", "503"
            api_site.stop()  # its port now refuses connections
            telegram, smtp, hooks = ends["telegram"], ends["smtp"], ends["hooks"]
            until(lambda: len(telegram.messages()) >= 2 and len(smtp.mails()) >= 3
                  and len(hooks.hits()) >= 3, "the three downs alerted")
            run.wait_for(r"alert not sent by telegram to @ghost_user: user @ghost_user not found")
            time.sleep(5 * INTERVAL)  # they stay down: nothing more is owed
            assert (len(telegram.messages()), len(smtp.mails()), len(hooks.hits())) == (2, 3, 3)
            states["shop"], states["late"] = "200", "200"
            until(lambda: len(telegram.messages()) >= 3 and len(smtp.mails()) >= 4
                  and len(hooks.hits()) >= 4, "the shop's recovery told")
            run.wait_for(r"/late: 502 -> 200 \(up\)")
            time.sleep(2 * INTERVAL)
            code = run.stop()
        finally:
            run.kill()
        head_methods = [seen.method for seen in sites.requests() if seen.path == "/head"]
    out = run.output
    assert code == 0 and out.endswith("stopped") and "Traceback" not in out, out
    assert TOKEN not in out and PASSWORD not in out and TOKEN.split(":")[1] not in out
    # Telegram: each alert to its contact's chat; nothing for the site down from the start.
    sent = sorted((m["chat"]["id"], m["text"].split(" at ")[0]) for m in telegram.messages())
    assert sent == [(7100002, f"ALERT: {base}/shop is DOWN (502; was 200)"),
                    (7100002, f"RECOVERED: {base}/shop is up again (200)"),
                    (7100003, f"ALERT: {api} is DOWN (connection refused; was 200)")], out
    assert re.search(r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", telegram.messages()[0]["text"])
    # E-mail: the same, by address (the ghost has one), never to the cut-short address.
    # (a long Subject is folded at once after its name: the parsed one starts with a space)
    mails = sorted((m.rcpt_tos, m.subject.strip()) for m in smtp.mails())
    assert mails == [(("boris@shop.example",), f"ALERT: {base}/shop is DOWN (502; was 200)"),
                     (("boris@shop.example",), f"RECOVERED: {base}/shop is up again (200)"),
                     (("gleb@ghost.example",), f"ALERT: {base}/ghost is DOWN (503; was 200)"),
                     (("vera@api.example",), f"ALERT: {api} is DOWN (connection refused; "
                                             "was 200)")]
    assert all(m.tls and m.auth_user == ACCOUNT.user for m in smtp.mails())
    # The webhook: one JSON body per alert, naming the site and its contact.
    bodies = sorted((h.json["site"], h.json["status"]) for h in hooks.hits())
    assert bodies == sorted([(api, "connection refused"), (f"{base}/ghost", "503"),
                             (f"{base}/shop", "200"), (f"{base}/shop", "502")])
    first = next(h.json for h in hooks.hits() if h.json["status"] == "502")
    assert first["previous"] == "200" and first["contact"] == {
        "telegram": "@shop_boris", "email": "boris@shop.example"}
    assert first["text"].startswith(f"ALERT: {base}/shop is DOWN (502; was 200) at ")
    # The log: one line per change; the HEAD-405 site checked by GET and never down.
    assert len(re.findall(r"/shop: 200 -> 502 \(down\)", out)) == 1
    assert re.search(rf"Z {re.escape(base)}/late: down \(502\)", out)
    assert re.search(r"warning: line 7: e-mail 'mizulin' has no @; no e-mail alerts", out)
    assert re.search(rf"{re.escape(base)}/miz: up \(200\)", out)
    assert re.search(rf"{re.escape(base)}/head: up \(200\)", out)
    assert f"{base}/head: 200 ->" not in out
    assert head_methods[0] == "HEAD" and set(head_methods[1:]) == {"GET"}, head_methods


def test_checks_keep_their_schedule_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port = refused_port()
    with Served(lambda: sites_app({name: name for name in DELAYS})) as sites:
        (tmp_path / "sites.csv").write_text("".join(
            f"{sites.base_url}/{name},@a_person,\n" for name in DELAYS)
            + f"http://127.0.0.1:{port}/\n")
        run = Run(["sites.csv", str(INTERVAL), "--timeout", "0.5", "--log", "monitor.log"], {},
                  tmp_path)
        try:
            run.wait_for(r"/slow: up \(200\)")
            run.wait_for(rf":{port}/: down \(connection refused\)")
            run.wait_for(r"/hangs: down \(timeout after 0.5 s\)")
            time.sleep(12 * INTERVAL)
            code = run.stop(signal.SIGTERM)
        finally:
            run.kill()
        starts = {name: [seen.at for seen in sites.requests() if seen.path == f"/{name}"]
                  for name in DELAYS}
    out = run.output
    assert code == 0 and out.endswith("stopped") and "Traceback" not in out, out
    assert "warning: no alert channel" in out
    gaps = {name: [b - a for a, b in itertools.pairwise(at)] for name, at in starts.items()}
    # A check of 0.15 s keeps to its 0.25 s slots (sleeping an interval after each check would
    # make the gaps 0.4 s); one of 0.3 s skips the slot it ran into (the next check in 0.5 s,
    # not at once in 0.3 s); one that times out after 0.5 s waits for the third slot (0.75 s).
    for name, expected in [("slow", INTERVAL), ("sluggish", 2 * INTERVAL),
                           ("hangs", 3 * INTERVAL)]:
        assert len(gaps[name]) >= 3, gaps
        assert abs(statistics.median(gaps[name]) - expected) < 0.08, (name, gaps[name])
    assert len(re.findall(r"/slow: ", out)) == 1  # no line per unchanged check
    log = (tmp_path / "monitor.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ http://\S+/slow: up \(200\)$", log, re.M)
