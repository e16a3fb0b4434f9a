"""A real HTTP server on loopback that receives webhooks, for the tests: it keeps every request
(headers and body) and answers `fail_first` requests of each webhook-id with a 500 (or all of them
when `fail_always`), then 204; with `delay`, each answer waits that many seconds after the request
is counted (a slow receiver, so that a killed worker dies mid-send)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    answered: int


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    fail_first: int = 0
    fail_always: bool = False
    redirect_to: str = ""
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(r.headers["webhook-id"] for r in self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(**options: object) -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                webhook_id = headers.get("webhook-id", "")
                receiver.seen[webhook_id] += 1
                failing = receiver.fail_always or receiver.seen[webhook_id] <= receiver.fail_first
                status = 302 if receiver.redirect_to else 500 if failing else 204
                receiver.requests.append(Received(headers, body, status))
            if receiver.delay:
                time.sleep(receiver.delay)
            self.send_response(status)
            if receiver.redirect_to:
                self.send_header("Location", receiver.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server=server, **options)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
