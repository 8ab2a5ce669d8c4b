"""A tiny TCP proxy a test can switch off and on: while off, every connection is cut and new ones refused."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``down()`` cuts every connection, ``up()`` restores service."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._enabled = threading.Event()
        self._enabled.set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def url(self, database_url: str) -> str:
        """``database_url`` pointed at this proxy instead of its host and port."""
        from sqlalchemy.engine import make_url

        return (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def start(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def down(self) -> None:
        """Simulate the server going away: refuse new connections and reset the open ones."""
        self._enabled.clear()
        with self._lock:
            victims = list(self._sockets)
        for sock in victims:
            self._shut(sock)

    def up(self) -> None:
        self._enabled.set()

    def stop(self) -> None:
        self._closing.set()
        self.down()
        with contextlib.suppress(
            OSError
        ):  # wake the acceptor: close() alone does not interrupt accept()
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _shut(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._sockets.discard(sock)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._closing.is_set():
                self._shut(client)
                return
            if not self._enabled.is_set():
                self._shut(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._shut(client)
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            self._threads = [t for t in self._threads if t.is_alive()]
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pipe, args=(src, dst), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            self._shut(src)
            self._shut(dst)
