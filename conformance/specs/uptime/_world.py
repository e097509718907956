"""The scripted world an uptime monitor is judged in: the sites of its CSV with their contacts,
and the timeline of what each site answers, second by second, over one run.

Rules: the same world every run (no randomness); standard library only; times are seconds from
the program's start, N (the check interval) is INTERVAL. Every contact is a person of its own
(a Telegram user, an e-mail address), so an alert sent to the wrong one is seen. Phases are a
few intervals long at least, so a monitor with a threshold of two or three failed checks still
sees each change; the site that hangs does so from 14 s to the end (a connection opened while it
hangs would stay silent past any recovery, so none is scripted), after the changes the cadence
is judged on, so a monitor that checks one site after another is seen late there only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

INTERVAL = 1.0  # N, seconds
STOP_AT = 27.0  # Ctrl+C, seconds after the start
STOP_GRACE = 5.0  # seconds a monitor has to end after Ctrl+C

State = Literal["up", "502", "503", "refused", "hangs", "head-405", "slow", "moved"]
WORKING: frozenset[str] = frozenset({"up", "head-405", "slow", "moved"})


@dataclass(frozen=True)
class Contact:
    """A person an alert may go to: a Telegram user (id, @username, who started the bot) and an
    e-mail address (as the CSV gives it: it may be cut short)."""

    username: str  # without the @
    user_id: int
    first_name: str
    email: str

    @property
    def email_ok(self) -> bool:
        """Whether the CSV's e-mail is an address at all."""
        return "@" in self.email


@dataclass(frozen=True)
class Phase:
    """From `start` seconds on, the site answers as `state` says."""

    start: float
    state: State

    @property
    def working(self) -> bool:
        """Whether a correct monitor sees the site working in this phase."""
        return self.state in WORKING


@dataclass(frozen=True)
class Site:
    """One row of the CSV: a domain, its contact and its timeline (phases in order, the first
    from 0); `flaps` marks the site that flips every second (judged by the MAY only)."""

    domain: str
    contact: Contact
    phases: tuple[Phase, ...]
    flaps: bool = False
    bad_row: bool = False  # the seed's row whose e-mail is cut short

    def state_at(self, t: float) -> State:
        """What the site answers `t` seconds into the run."""
        state = self.phases[0].state
        for phase in self.phases:
            if phase.start <= t:
                state = phase.state
        return state

    def downs(self) -> list[tuple[float, float]]:
        """The (start, end) of every working->failing phase (end: the next working phase's
        start, or the stop): each is owed exactly one alert."""
        out = []
        for before, phase, after in zip((None, *self.phases[:-1]), self.phases,
                                        (*self.phases[1:], None), strict=True):
            if before is not None and before.working and not phase.working:
                out.append((phase.start, after.start if after is not None else STOP_AT))
        return out


def _c(username: str, user_id: int, name: str, email: str) -> Contact:
    return Contact(username, user_id, name, email)


def _flips(start: float, end: float, every: float) -> tuple[Phase, ...]:
    phases = []
    t, state = start, "502"
    while t < end:
        phases.append(Phase(t, state))  # type: ignore[arg-type]
        state = "up" if state == "502" else "502"
        t += every
    return (*phases, Phase(end, "up"))


SITES: tuple[Site, ...] = (
    Site("example.com", _c("ops_anna", 7100001, "Anna", "anna@ops.example"),
         (Phase(0, "up"),)),
    Site("shop.example.org", _c("shop_boris", 7100002, "Boris", "boris@shop.example"),
         (Phase(0, "up"), Phase(5, "502"), Phase(9, "up"), Phase(12, "503"))),
    Site("api.example.net", _c("api_vera", 7100003, "Vera", "vera@api.example"),
         (Phase(0, "up"), Phase(6, "refused"), Phase(11, "up"))),
    Site("hangs.example.net", _c("net_gleb", 7100004, "Gleb", "gleb@net.example"),
         (Phase(0, "up"), Phase(14, "hangs"))),
    Site("late.example.com", _c("late_dina", 7100005, "Dina", "dina@late.example"),
         (Phase(0, "502"), Phase(9, "up"))),
    Site("head.example.org", _c("head_egor", 7100006, "Egor", "egor@head.example"),
         (Phase(0, "up"), Phase(4, "head-405"))),
    Site("slow.example.net", _c("slow_ivan", 7100007, "Ivan", "ivan@slow.example"),
         (Phase(0, "slow"),)),
    Site("moved.example.org", _c("moved_lena", 7100010, "Lena", "lena@moved.example"),
         (Phase(0, "up"), Phase(4, "moved"))),
    Site("flap.example.org", _c("flap_zoya", 7100008, "Zoya", "zoya@flap.example"),
         (Phase(0, "up"), *_flips(3, 13, 1.0)), flaps=True),
    Site("mizulina.ru", _c("mizulina", 7100009, "Mizulina", "mizulin"),
         (Phase(0, "up"),), bad_row=True),
)
SLOW_SECONDS = 0.6  # slow.example.net answers after this long (working, but slow)
MOVED_TO = "moved.example.org/new/"  # where moved.example.org's / redirects from 4 s (301)
HANG_LIMIT = 10.0  # a monitor's timeout (times its threshold) under this sees the hang in time
ALERT_WITHIN = 3 * INTERVAL + 5.0  # an alert is due this long after its change at the latest
CHANGE_GRACE = 3.0  # an alert this soon after a recovery still belongs to the down before it

# The alert services, as the program is told of them (values made per run are in _runs.py).
BOT_USERNAME = "uptime_alerts_bot"
BOT_ID = 6100000001
SMTP_HOST = "smtp.alerts.test"
SMTP_USER = "monitor@alerts.test"
WEBHOOK_HOST = "hooks.alerts.test"
WEBHOOK_URL = f"http://{WEBHOOK_HOST}/uptime"
TELEGRAM_API = "api.telegram.org"
MONITOR_ACCOUNT = {"id": 7100100, "first_name": "Uptime", "last_name": "Monitor",
                   "username": "uptime_monitor", "phone": "15550000100", "hash": 92100}


def csv_text(sites: tuple[Site, ...] = SITES) -> str:
    """The CSV as the seed writes it: its header (`;` then `,`), comma-separated rows."""
    rows = ["DOMAIN_NAME;tg_username,email"]
    rows += [f"{s.domain},@{s.contact.username},{s.contact.email}" for s in sites]
    return "\n".join(rows) + "\n"


def contacts() -> list[Contact]:
    """Every contact of the CSV, once each, in the CSV's order."""
    out: list[Contact] = []
    for s in SITES:
        if s.contact not in out:
            out.append(s.contact)
    return out


def site(domain: str) -> Site:
    """The site of `domain`; KeyError if none."""
    return next(s for s in SITES if s.domain == domain)
