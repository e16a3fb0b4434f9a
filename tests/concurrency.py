"""Running work in several threads at once (each with its own database connection), for the race
tests that need PostgreSQL's row locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def together(work: Callable[[int], object], count: int = 2) -> list[Exception]:
    """Calls work(0) .. work(count - 1) in `count` threads released at the same moment; returns what
    they raised (a failure in a thread is reported by the test, not lost)."""
    barrier = threading.Barrier(count)
    failures: list[Exception] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(n)
        except Exception as failure:
            failures.append(failure)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (a deadlock?)"
    return failures
