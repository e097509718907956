"""Start a target as if from a fresh shell: `python -I -S _launch.py PROGRAM ARGS...` resets every
signal to its default disposition, unblocks them all, then becomes PROGRAM (exec).

Rules: standard library only, and nothing else done: it runs before every process a check
starts. A grader launched in the background, by nohup or by cron ignores SIGINT (or SIGHUP,
SIGQUIT), and ignored signals stay ignored across exec; a target that inherited that could not
be stopped with Ctrl+C, and a client's Ctrl+C handling could not be judged. A program that
cannot be started exits 127 with the reason on stderr, as a shell does.
"""

import contextlib
import os
import signal
import sys


def main(argv: list[str]) -> int:
    """Reset the signals, then become `argv` (returns only when it cannot be started)."""
    # Every catchable signal back to its default: what a program started from a terminal has.
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):  # ones the platform will not set
                signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if not argv:
        print("usage: python _launch.py PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"cannot start {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
    return 127


# Only as a script: importing it (the batch's fork server imports our modules) does nothing.
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
