"""Run a command in the network namespace it was started in, with that namespace's loopback up:
`unshare --net [--map-root-user] python tests/_netns.py CMD ARGS...` gives CMD a network of its
own, where the fixed ports of the assignments (8888) are free whatever the machine runs."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Bring `lo` up (a new network namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python tests/_netns.py CMD [ARGS...]", file=sys.stderr)
        sys.exit(2)
    loopback_up()
    os.execvp(sys.argv[1], sys.argv[1:])
