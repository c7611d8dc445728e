"""SIGTERM handled like Ctrl-C: a batch scheduler's end of job, ``docker stop`` or ``kill`` ends a
command through :class:`Terminated` (a ``KeyboardInterrupt``), so the run's ``except`` paths mark
it ``interrupted`` (resumable by running it again) instead of leaving ``running`` behind."""
from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (handled like Ctrl-C)."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread; the previous
    handler is restored after (outside the main thread, where handlers cannot be set: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame):
        raise Terminated(f"terminated by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
