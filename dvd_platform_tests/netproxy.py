"""A TCP forwarder that a test can take down and bring back: a server that goes away for a while."""

from __future__ import annotations

import socket
import threading

from dvd_platform.dev.stack.procs import free_port


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; while down, connections are refused and open ones cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0  # connections forwarded so far
        self.attempts = 0  # connections accepted, forwarded or not (the target refused): how often a client tried

    def up(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.2)
        self._server = server
        self._thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                self._thread.join(2)
            server.close()
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            _close(sock)

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.attempts += 1  # counted before the client can see its connection closed
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
