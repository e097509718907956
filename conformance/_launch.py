"""Start a target as if from a fresh shell: `python -I -S _launch.py [--bind SRC=DST]...
[--user UID] [--rlimit NAME=VALUE]... PROGRAM ARGS...` resets every signal to its default
disposition, unblocks them all, gives the program the files it is shown (each `--bind`: SRC
seen at DST, in a mount namespace of its own), becomes user UID (root only: its groups, then a
user namespace of its own, where its processes are counted apart from every other process of
that user), sets its limits (`data`, `nproc`, `nofile`, `fsize`, `cpu`: soft and hard alike,
the CPU's hard limit 5 s later so SIGXCPU comes first), then becomes PROGRAM (exec).

Rules: standard library only, and nothing else done: it runs before every process a check
starts. A grader launched in the background, by nohup or by cron ignores SIGINT (or SIGHUP,
SIGQUIT), and ignored signals stay ignored across exec; a target that inherited that could not
be stopped with Ctrl+C, and a client's Ctrl+C handling could not be judged. Binds are made
private to the program (the mount namespace's mounts made private first, so nothing reaches the
grader's view); where this process has no right to mount (a normal user: the run's user
namespace gave the grader, not an exec'd launcher, its capabilities) it makes a nested user
namespace mapping its own ids to themselves, so the program keeps its user. A program that
cannot be started, or whose binds cannot be made, exits 127 with the reason on stderr, as a
shell does: it never runs with a view other than the one it was given.
"""

import contextlib
import ctypes
import errno
import os
import resource
import signal
import sys

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
USAGE = ("usage: python _launch.py [--bind SRC=DST]... [--user UID] [--rlimit NAME=VALUE]... "
         "[--] PROGRAM [ARGS...]")
_RLIMITS = {"data": resource.RLIMIT_DATA, "nproc": resource.RLIMIT_NPROC,
            "nofile": resource.RLIMIT_NOFILE, "fsize": resource.RLIMIT_FSIZE,
            "cpu": resource.RLIMIT_CPU}


def _fail(libc_call: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{libc_call}: {os.strerror(code)} ({errno.errorcode.get(code, code)})")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as out:
        out.write(text)


def bind(pairs: list[tuple[str, str]]) -> None:
    """Show each SRC at its DST to this process and what it execs, nobody else (OSError with
    the step that failed)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        if ctypes.get_errno() != errno.EPERM:
            raise _fail("unshare(CLONE_NEWNS)")
        # No CAP_SYS_ADMIN here: a user namespace of our own gives it, ids mapped to themselves.
        uid, gid = os.geteuid(), os.getegid()
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
            raise _fail("unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    # Private first: on a system whose root mount is shared, a bind would otherwise show in
    # the grader's (and the machine's) view too.
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise _fail("making the mounts private")
    for source, target in pairs:
        if libc.mount(os.fsencode(source), os.fsencode(target), None, _MS_BIND, None) != 0:
            raise _fail(f"binding {source} over {target}")


def become(uid: int) -> None:
    """Become `uid` (its group the same number, no other groups), then enter a user namespace
    of its own (OSError with the step that failed)."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER) != 0:
        raise _fail("unshare(CLONE_NEWUSER)")


def limit(limits: list[tuple[str, int]]) -> None:
    """Set each limit, soft and hard (OSError or ValueError when one cannot be)."""
    for name, value in limits:
        hard = value + 5 if name == "cpu" else value
        _, now = resource.getrlimit(_RLIMITS[name])
        if now != resource.RLIM_INFINITY:  # a limit is never raised (nor could it be)
            value, hard = min(value, now), min(hard, now)
        resource.setrlimit(_RLIMITS[name], (value, hard))


def main(argv: list[str]) -> int:
    """Reset the signals, make the binds, then become the program (returns only when it
    cannot be started)."""
    # Every catchable signal back to its default: what a program started from a terminal has.
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):  # ones the platform will not set
                signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    pairs: list[tuple[str, str]] = []
    limits: list[tuple[str, int]] = []
    user: int | None = None
    while argv and argv[0] in ("--bind", "--rlimit", "--user", "--"):
        if argv[0] == "--":
            argv = argv[1:]
            break
        word = argv[1] if len(argv) > 1 else ""
        key, sep, value = word.partition("=")
        if argv[0] == "--user" and word.isdigit():
            user = int(word)
        elif argv[0] == "--rlimit" and key in _RLIMITS and value.isdigit():
            limits.append((key, int(value)))
        elif argv[0] == "--bind" and sep and key and value:
            pairs.append((key, value))
        else:
            print(USAGE, file=sys.stderr)
            return 2
        argv = argv[2:]
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    if pairs:
        try:
            bind(pairs)
        except OSError as exc:
            print(f"cannot start {argv[0]}: its view of the files could not be made: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 127
    try:
        if user is not None:
            become(user)
        limit(limits)
    except (OSError, ValueError) as exc:
        print(f"cannot start {argv[0]}: its sandbox could not be made: "
              f"{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 127
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"cannot start {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
    return 127


# Only as a script: importing it (the batch's fork server imports our modules) does nothing.
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
