"""The probe suite's list of domains and what each record may hold: the sites the box serves for
one run (every fault of conformance/_box/_plan.py, many healthy sites), and, per domain and
scheme, the values of each field that a correct prober may write, read off the plan alone.

Rules: the plan is a function of the number of domains only (no randomness), so a run's
`conformance run probe --domains N` is its own reproducer; names are under `.test` (reserved,
never a real domain); every fault has a site of its own; REFUSED is on port 443 only once the
list is large (the box binds a socket per other site on a refusing port: conformance/_box/
_hosts.py; the bound run's sites refuse on 443 already). Where the text leaves a choice open
(a redirect followed or not, an endless body's status, gzip's size as sent or decoded, how a
cookie is written), every choice is allowed here and the SHOULDs judge the choice.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field, replace
from typing import Any

from conformance._box import Answer, Dns, Port, Site, Tls

SCHEMES = ("http", "https")
FIELDS = ("status", "server", "content_length", "content_language", "cookies")
HOLDERS = 120  # sites whose HTTP port holds its connection silent: concurrency shows on them
BOUND_SITES = 1500  # the connection-bound run's list: half as many again as the bound, all silent
LATE_DELAY = 1.5  # a LATE DNS answer's hold, within the resolver's timeout (DNS_DELAY + 2)
DNS_DELAY = 0.1  # every DNS answer is held this long, so that a program's queries overlap
REFUSED_BOTH_UP_TO = 2000  # above this many sites, REFUSED on port 443 only


def healthy(number: int) -> Site:
    """An ordinary site whose two ports answer differently (so a field copied from the other
    scheme shows)."""
    body = b"<html><body>" + b"x" * (number % 97) + b"</body></html>"
    return Site(f"site-{number}.test",
                http=Answer(server=f"box-http/{number % 7}", body=body),
                https=Answer(server=f"box-https/{number % 5}", body=body + b"<!-- tls -->"))


def faults() -> list[Site]:
    """One site per fault and per answer worth a look; `site-0.test` is the redirects' target
    (it is planned among the healthy ones)."""
    rich = Answer(server="rich", languages=("ru-RU", "en, de"),
                  cookies=("session=abc123; Path=/; HttpOnly", "theme=dark", "lang=ru; Secure"),
                  body=b"<p>rich</p>")
    return [
        Site("dns-nxdomain.test", dns=Dns.NXDOMAIN),
        Site("dns-servfail.test", dns=Dns.SERVFAIL),
        Site("dns-silent.test", dns=Dns.SILENT),
        Site("dns-late.test", dns=Dns.LATE, dns_delay=LATE_DELAY),
        Site("port-refused.test", http=Port.REFUSED, https=Port.REFUSED),
        Site("port-blackhole.test", http=Port.BLACKHOLE, https=Port.BLACKHOLE),
        Site("port-reset.test", http=Port.RESET, https=Port.RESET),
        Site("port-endless.test", http=Port.ENDLESS, https=Port.ENDLESS),
        Site("port-silent.test", http=Port.SILENT, https=Port.SILENT),
        Site("port-plain-https.test", https=Port.PLAIN_HTTP),
        Site("tls-expired.test", tls=Tls.EXPIRED),
        Site("tls-wrong-name.test", tls=Tls.WRONG_NAME),
        Site("tls-unknown-ca.test", tls=Tls.UNKNOWN_CA),
        Site("redirect-away.test", http=Answer(redirect="http://site-0.test/"),
             https=Answer(redirect="https://site-0.test/")),
        Site("redirect-loop.test", http=Answer(redirect="http://redirect-loop.test/"),
             https=Answer(redirect="https://redirect-loop.test/")),
        Site("rich-headers.test", http=rich, https=Answer(
            server="rich-tls", languages=("fr",), cookies=("secure=1; Secure",))),
        Site("gzip.test", http=Answer(gzip=True, body=b"<p>" + b"squeeze me " * 200 + b"</p>"),
             https=Answer(gzip=True, body=b"<p>" + b"tls " * 100 + b"</p>")),
        Site("no-server.test", http=Answer(server=None), https=Answer(server=None)),
        Site("empty-body.test", http=Answer(body=b""), https=Answer(body=b"")),
        Site("head-differs.test", http=Answer(head_differs=True),
             https=Answer(head_differs=True)),
        Site("status-404.test", http=Answer(status=404, body=b"not here"),
             https=Answer(status=503, body=b"later")),
        Site("http-only-fails.test", http=Port.RESET, https=Answer(server="tls-only")),
        Site("https-only-fails.test", https=Port.SILENT),
    ]


def holder(number: int) -> Site:
    """A site whose HTTP request is held silent until the program gives up on it (its HTTPS
    answers): connections a concurrent prober holds together."""
    return Site(f"slow-{number}.test", http=Port.SILENT, https=Answer(server="after-slow"))


def bound_site(number: int) -> Site:
    """A site of the connection-bound run: HTTP holds the request silent, HTTPS refuses, so
    that every connection of the run is a plain one the prober holds until it gives up and
    closes at once (a TLS socket stays established through TLS's closing alerts, which a
    loaded box answers late, and would count beside the bound). Port 443 refusing costs the
    box a listener per other site there, so large lists refuse on 443 only (plan())."""
    return Site(f"bound-{number}.test", http=Port.SILENT, https=Port.REFUSED)


@dataclass(frozen=True)
class Plan:
    """The box's sites for a suite run: `listed` the main list's names in order, `bound` the
    connection-bound run's, and every site by name."""

    sites: tuple[Site, ...]
    listed: tuple[str, ...]
    bound: tuple[str, ...]
    by_name: dict[str, Site] = field(default_factory=dict)

    def site(self, name: str) -> Site:
        """The planned site of a name (any case, trailing dot ignored); KeyError if none."""
        return self.by_name[name.lower().rstrip(".")]


def plan(count: int) -> Plan:
    """The list of `count` domains: the faults first (as many as fit), then HOLDERS slow sites
    when there is room for them beside some healthy ones, then healthy sites; and the
    bound run's sites, which the main list does not name."""
    special = faults()
    if count > REFUSED_BOTH_UP_TO:
        special = [Site(s.name, https=Port.REFUSED) if s.name == "port-refused.test" else s
                   for s in special]
    holders = min(HOLDERS, max(0, (count - len(special)) // 2))
    main: list[Site] = [healthy(0)]  # the redirects' target, always listed
    main += special[:count - 1]
    main += [holder(n) for n in range(holders)]
    main += [healthy(n) for n in range(1, count - len(main) + 1)]
    bound = [bound_site(n) for n in range(BOUND_SITES)]
    # Spread the faults through the list: a prober that stops at the first bad domain, or
    # handles the list in chunks, shows it on the domains after.
    ordered = _interleave(main)
    sites = (*ordered, *bound)
    return Plan(sites=tuple(sites), listed=tuple(s.name for s in ordered),
                bound=tuple(s.name for s in bound), by_name={s.name: s for s in sites})


def _interleave(sites: list[Site]) -> list[Site]:
    """Healthy sites and the others alternated, the others spread evenly through the list."""
    plain = [s for s in sites if s.name.startswith("site-")]
    other = [s for s in sites if not s.name.startswith("site-")]
    if not plain or not other:
        return sites
    out: list[Site] = []
    step = max(1, len(plain) // len(other))
    for i, site in enumerate(other):
        out += plain[i * step:(i + 1) * step]
        out.append(site)
    out += plain[len(other) * step:]
    return out


def list_text(names: list[str] | tuple[str, ...]) -> str:
    """A list in the seed's format: `rank,domain` lines, as the top-10k CSV."""
    return "".join(f"{rank},{name}\n" for rank, name in enumerate(names, 1))


# -- what a record may hold ----------------------------------------------------------------------

ERROR = "a non-empty string other than 'Ok'"


@dataclass(frozen=True)
class Allowed:
    """The values one field of one scheme may have (normalised by `normal`), and whether an
    error text (https_status: a non-empty string other than Ok) passes."""

    values: tuple[Any, ...] = ()
    error: bool = False

    def __or__(self, other: Allowed) -> Allowed:
        values = self.values + tuple(v for v in other.values if v not in self.values)
        return Allowed(values, self.error or other.error)

    def accepts(self, normalised: Any) -> bool:
        """Whether a normalised value passes."""
        if self.error and isinstance(normalised, str) and normalised.strip() \
                and normalised != "Ok":
            return True
        return any(type(v) is type(normalised) and v == normalised for v in self.values)

    def describe(self) -> str:
        """The allowed values, for a person."""
        words = [_show(v) for v in self.values]
        if self.error:
            words.append(ERROR)
        return " or ".join(words) or "(nothing)"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return "None" if value is None else repr(value)


def answered(answer: Answer, scheme: str) -> dict[str, Allowed]:
    """The fields of a GET / answered as `answer` says (a redirect: its 301, unfollowed)."""
    if answer.redirect is not None:
        return {"status": Allowed((301 if scheme == "http" else "Ok",)),
                "server": Allowed((answer.server,)), "content_length": Allowed((0,)),
                "content_language": Allowed(((),)), "cookies": Allowed(((),))}
    sizes: tuple[int, ...] = (len(answer.body),)
    if answer.gzip:
        sizes = (len(gzip.compress(answer.body, mtime=0)), len(answer.body))
    return {"status": Allowed((answer.status if scheme == "http" else "Ok",)),
            "server": Allowed((answer.server,)), "content_length": Allowed(sizes),
            "content_language": Allowed((tuple(sorted(languages(answer.languages))),)),
            "cookies": Allowed((tuple(sorted(cookie_pair(c) for c in answer.cookies)),))}


def failed(scheme: str, *, tls: bool = False) -> dict[str, Allowed]:
    """The fields of a request that got no answer; `tls` when TLS itself failed (https_status
    must then say so)."""
    status = Allowed(error=True) if tls else Allowed((None,), error=scheme == "https")
    return {"status": status, "server": Allowed((None,)), "content_length": Allowed((None,)),
            "content_language": Allowed(((),)), "cookies": Allowed(((),))}


def _union(*cases: dict[str, Allowed]) -> dict[str, Allowed]:
    out = dict(cases[0])
    for case in cases[1:]:
        for key, allowed in case.items():
            out[key] = out[key] | allowed
    return out


def allowed(plan: Plan, site: Site, scheme: str) -> dict[str, Allowed]:
    """What each field of `scheme` may hold in `site`'s record."""
    if site.dns in (Dns.NXDOMAIN, Dns.SERVFAIL, Dns.SILENT):
        return failed(scheme)
    if site.dns is Dns.LATE:
        # Answered within the resolver's timeout, but behind thousands of queries a prober's
        # own timeout (DNS included) may pass first: the answer, or a failure.
        return _union(allowed(plan, replace(site, dns=None), scheme), failed(scheme))
    spec = site.http if scheme == "http" else site.https
    if scheme == "https" and (site.tls is not None or spec is Port.PLAIN_HTTP):
        return failed(scheme, tls=True)
    if spec is Port.ENDLESS:
        # The headers came and the body never ends: the code (or Ok) or None, no length.
        endless = failed(scheme)
        endless["status"] = endless["status"] | Allowed((200 if scheme == "http" else "Ok",))
        endless["server"] = endless["server"] | Allowed(("box",))
        return endless
    if isinstance(spec, Port):
        return failed(scheme)
    if spec.redirect is None:
        return answered(spec, scheme)
    unfollowed = answered(spec, scheme)
    target = spec.redirect.split("://", 1)[1].split("/", 1)[0]
    if target == site.name:  # a loop: the 301, or a prober that follows gives up
        return _union(unfollowed, failed(scheme))
    # Followed (PROBE-20 judges that choice): the answer of the page it leads to.
    other = plan.site(target)
    return _union(unfollowed, allowed(plan, other, scheme))


def languages(values: tuple[str, ...] | list[str]) -> list[str]:
    """The language tags of Content-Language values, each split at its commas."""
    return [tag.strip() for value in values for tag in value.split(",") if tag.strip()]


def cookie_pair(item: Any) -> tuple[str, str] | None:
    """The (name, value) a record's cookie item gives: a string `name=value[; attributes]`, or
    an object {"name": ..., "value": ...} or {name: value}; None when it gives none."""
    if isinstance(item, str):
        pair = item.split(";", 1)[0]
        if "=" not in pair:
            return None
        name, value = pair.split("=", 1)
        return (name.strip(), value.strip())
    if isinstance(item, dict):
        if isinstance(item.get("name"), str) and "value" in item:
            return (item["name"], str(item["value"]))
        if len(item) == 1:
            ((name, value),) = item.items()
            return (str(name), str(value))
    return None


NOT_A_LIST = "(not a list)"


def normal(key: str, value: Any) -> Any:
    """A record's value made comparable with `allowed`'s: lists as sorted tuples (languages
    split at commas, cookies as (name, value) pairs), the rest as is."""
    if key == "content_language":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return NOT_A_LIST
        return tuple(sorted(languages(value)))
    if key == "cookies":
        if not isinstance(value, list):
            return NOT_A_LIST
        pairs = [cookie_pair(item) for item in value]
        if any(p is None for p in pairs):
            return NOT_A_LIST
        return tuple(sorted(p for p in pairs if p is not None))
    if key in ("status", "content_length") and isinstance(value, bool):
        return repr(value)  # a boolean is not a number
    return value
