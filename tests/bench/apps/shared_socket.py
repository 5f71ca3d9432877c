"""Several server processes on one listening socket: what ``uvicorn --workers N`` does, for Daphne.

``python -m tests.bench.apps.shared_socket HOST PORT N COMMAND...`` binds and listens on
``HOST:PORT``, then runs ``COMMAND --fd FD`` N times (Daphne's ``--fd``: serve an inherited
socket); the processes accept from the one socket, so a client cannot tell which one answers.
It stays in the foreground until a child exits or it is told to stop, then stops every child.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    host, port, count, *command = argv
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(1024)
    fd = listener.fileno()
    children = [subprocess.Popen([*command, "--fd", str(fd)], pass_fds=(fd,)) for _ in range(int(count))]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
