"""A threaded local HTTP server that can drop connections and shuts down quickly and cleanly."""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler that hands every GET to the server's ``dispatch`` callable."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = (
        True  # headers and body are two writes; avoid the 40 ms delayed-ACK stall
    )
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def do_GET(self) -> None:
        self.server.dispatch(self)

    def reply(
        self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def drop(self, *, rst: bool) -> None:
        """End the connection without a response: TCP RST (``rst``) or a plain FIN."""
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()
        self.close_connection = True


class LocalServer(ThreadingHTTPServer):
    """127.0.0.1 on an ephemeral port; tracks its connections so ``stop`` never waits on keep-alive."""

    daemon_threads = True

    def __init__(self, dispatch: Callable[[Handler], None]) -> None:
        self.dispatch = dispatch
        self.live: set[socket.socket] = set()
        self.workers: set[threading.Thread] = set()
        self.guard = threading.Lock()
        self.stopping = threading.Event()  # handlers wait on this instead of sleeping
        super().__init__(("127.0.0.1", 0), Handler)
        self._loop = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-upstream",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self.guard:
            live, workers = list(self.live), list(self.workers)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(timeout=2)
        self.server_close()
        self._loop.join(timeout=2)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._serve,
            args=(request, client_address),
            name="fake-upstream-conn",
            daemon=True,
        )
        with self.guard:
            self.live.add(request)
            self.workers.add(worker)
        worker.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.guard:
                self.live.discard(request)
                self.workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are expected (timeouts, resets); anything else is printed."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)
