"""The reference `credentials.py`: a WSGI server that maps a species to its credentials.

Standard library only (the assignment forbids external dependencies). Run it as
`python credentials.py [--host H] [--port P]`; it listens on 127.0.0.1:8888 by default.

Rules, as `openapi/credentials.requirements.yaml` states them:
- `GET /?species=NAME`: 200 and `{"credentials": "<name>"}` for the eleven species, matched
  exactly as the table spells them, after URL decoding (`%20` and `+` are spaces);
- any other species, an empty one, or none at all: 404 and `{"credentials": "Unknown"}`;
- every answer is `Content-Type: application/json`; HEAD is GET without the body;
- other methods get 405 with `Allow: GET, HEAD`, other paths 404, both with a JSON error.
"""

from __future__ import annotations

import argparse
import json
import signal
import socketserver
import sys
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888

SPECIES: Mapping[str, str] = {
    "Cyberman": "John Lumic",
    "Dalek": "Davros",
    "Judoon": "Shadow Proclamation Convention 15 Enforcer",
    "Human": "Leonardo da Vinci",
    "Ood": "Klineman Halpen",
    "Silence": "Tasha Lem",
    "Slitheen": "Coca-Cola salesman",
    "Sontaran": "General Staal",
    "Time Lord": "Rassilon",
    "Weeping Angel": "The Division Representative",
    "Zygon": "Broton",
}
UNKNOWN = "Unknown"

StartResponse = Callable[[str, list[tuple[str, str]]], object]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


def _json(start_response: StartResponse, status: str, payload: object, head: bool,
          extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = json.dumps(payload).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [] if head else [body]


def create_app(table: Mapping[str, str] | None = None) -> WSGIApp:
    """Return the WSGI application answering from `table` (the assignment's by default)."""
    names = dict(SPECIES if table is None else table)

    def app(environ: dict, start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        head = method == "HEAD"
        if environ.get("PATH_INFO", "/") not in ("", "/"):
            return _json(start_response, "404 Not Found",
                         {"error": "no such path; ask /?species=NAME"}, head)
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed",
                         {"error": "only GET and HEAD are allowed"}, head,
                         [("Allow", "GET, HEAD")])
        # parse_qs decodes %XX escapes and '+' as UTF-8; a repeated parameter counts once, first.
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        species = query.get("species", [""])[0]
        if species in names:
            return _json(start_response, "200 OK", {"credentials": names[species]}, head)
        return _json(start_response, "404 Not Found", {"credentials": UNKNOWN}, head)

    return app


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per connection, so one slow client stalls no one."""

    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    # A client that opens a connection and never finishes its request is dropped after this.
    timeout = 30

    def log_message(self, format: str, *args: object) -> None:
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


def make(app: WSGIApp, host: str, port: int, *, threaded: bool = True,
         quiet: bool = False) -> WSGIServer:
    """Bind a WSGI server for `app` on host:port (threaded unless told otherwise)."""
    server_class = ThreadingWSGIServer if threaded else WSGIServer
    server = make_server(host, port, app, server_class=server_class, handler_class=_Handler)
    server.quiet = quiet  # type: ignore[attr-defined]
    return server


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(server: WSGIServer) -> int:
    """Serve until Ctrl+C or SIGTERM, then close the socket and return 0."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    host, port = server.server_address[:2]
    print(f"credentials: serving on http://{host}:{port}/ (Ctrl+C to stop)", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("credentials: stopped", file=sys.stderr, flush=True)
    finally:
        server.server_close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: --host, --port and --quiet."""
    parser = argparse.ArgumentParser(description="Species -> credentials JSON server (WSGI).")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the server from the command line."""
    args = build_parser().parse_args(argv)
    try:
        server = make(create_app(), args.host, args.port, quiet=args.quiet)
    except OSError as exc:
        print(f"credentials: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return serve(server)


if __name__ == "__main__":
    sys.exit(main())
