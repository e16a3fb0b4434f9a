"""localstripe for the tests: one process per test session, on a free loopback port.

`python -m tests.localstripe_server` runs localstripe's own aiohttp app, but bound to 127.0.0.1 only
(its command line listens on every interface) on a port the OS picks, which it prints first, and
with its store kept in memory (the command line writes every change to /tmp/localstripe.pickle,
which a developer's `./dev run` instance reads).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 30


@dataclass
class LocalStripe:
    process: subprocess.Popen
    url: str

    def post(self, path: str, data: dict) -> None:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback, http)
            assert response.status == 200, response.status

    def register_webhook(self, url: str, secret: str, events: list[str] | None = None) -> None:
        """Deliver events to `url`, signed with `secret` (one registration, replaced on each call)."""
        self.post("/_config/webhooks/mission-control-tests", {"url": url, "secret": secret, "events": events})

    def stop_webhooks(self, secret: str) -> None:
        # localstripe has no way to remove a webhook: keep it, for an event type that never happens.
        self.register_webhook("http://127.0.0.1:9/", secret, events=["mission_control.never"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start() -> LocalStripe:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.localstripe_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    port = int(process.stdout.readline().strip() or 0)
    if not port:
        process.kill()
        raise RuntimeError("localstripe did not start")
    server = LocalStripe(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(server.url + "/js.stripe.com/v3/", timeout=2):  # noqa: S310
                return server
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"localstripe exited with {process.returncode}") from None
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"localstripe did not answer within {START_TIMEOUT_SECONDS} s")


def _serve() -> None:
    from aiohttp import web
    from localstripe import resources, server

    resources.store.dump_to_disk = lambda: None  # in memory only: the store dies with the test session
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    _serve()
