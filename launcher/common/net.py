"""Ports on this machine: one `free_port` for every server we start on 127.0.0.1.

    port = free_port()      # then bind a server (or torchrun's rendezvous) to it

The port is free when asked; a server that binds it right after gets it.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
