"""Ctrl-C during prepare: an exception that cleans up, not litdata's silent `os._exit(0)`.

Place in the flow: prepare/shards.py wraps litdata's `optimize` in `sigint_raises()`; the
KeyboardInterrupt then unwinds through shards.write_domain (which removes the domain's temporary
folder and says so) and ends `python -m mixtrain.prepare` with a non-zero status.

Why: litdata's DataProcessor installs a SIGINT handler that stops its workers and calls
`os._exit(0)`: an interrupted prepare exited 0, printed nothing and left `DIR/.<domain>.tmp-<pid>/`
behind (the next prepare removed it; the re-run itself was correct). Here litdata's registration of
that handler is redirected to one that stops the same workers and raises KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any
from unittest import mock


def _stop_and_raise(processor: Any) -> Any:
    def handler(signum, frame) -> None:
        for queue in getattr(processor, "stop_queues", None) or []:  # what litdata's handler does first
            queue.put(None)
        for worker in getattr(processor, "workers", None) or []:
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
        raise KeyboardInterrupt
    return handler


@contextlib.contextmanager
def sigint_raises() -> Iterator[None]:
    """Within the block, a SIGINT handler registered by litdata (its DataProcessor's bound
    `_signal_handler`) is replaced by one that stops its workers and raises KeyboardInterrupt;
    the SIGINT handler of before is restored afterwards (litdata never restores it)."""
    previous = signal.getsignal(signal.SIGINT)
    real_signal = signal.signal

    def register(signum, handler):
        owner = getattr(handler, "__self__", None)
        if signum == signal.SIGINT and getattr(handler, "__name__", "") == "_signal_handler" and owner is not None:
            handler = _stop_and_raise(owner)
        return real_signal(signum, handler)

    try:
        with mock.patch.object(signal, "signal", register):
            yield
    finally:
        real_signal(signal.SIGINT, previous)
