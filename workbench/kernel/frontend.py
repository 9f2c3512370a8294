"""What the kernel needs from a frontend: tell it things, and ask the analyst a question.

:class:`NoFrontend` stands for nbclient, papermill, a console or plain Python: nobody can
answer, so a release needs a non-interactive approval. The comm-backed frontend lives in
``kernel/comm.py`` (the only place that imports Jupyter); both share :class:`Answers`, which
hands an analyst's answer from the thread that received it to the cell that waits for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Answer:
    approved: bool
    by: str = ""
    # A certified session's signature over the approval (docs/sealed-sessions.md).
    signature: str = ""


class Frontend(Protocol):
    @property
    def listening(self) -> bool: ...

    def send(self, kind: str, fields: dict[str, Any]) -> None: ...

    def ask(self, request_id: str, fields: dict[str, Any], timeout_s: float) -> Answer | None:
        """Send a ``release-request`` and wait for its answer (None: no answer in time)."""
        ...


class NoFrontend:
    listening = False

    def send(self, kind: str, fields: dict[str, Any]) -> None:
        return None

    def ask(self, request_id: str, fields: dict[str, Any], timeout_s: float) -> Answer | None:
        return None


class Answers:
    """Rendezvous between the receiving thread and waiting cells, keyed by request id."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: set[str] = set()
        self._answers: dict[str, Answer] = {}

    def expect(self, request_id: str) -> None:
        with self._cond:
            self._waiting.add(request_id)

    def deliver(self, request_id: str, answer: Answer) -> bool:
        """Hand over an answer; False when nobody waits for this id (late or unknown)."""
        with self._cond:
            if request_id not in self._waiting:
                return False
            self._answers[request_id] = answer
            self._cond.notify_all()
            return True

    def wait(self, request_id: str, timeout_s: float) -> Answer | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            try:
                while request_id not in self._answers:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(left)
                return self._answers.pop(request_id)
            finally:
                self._waiting.discard(request_id)
