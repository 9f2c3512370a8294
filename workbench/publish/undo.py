"""What a publish did, as the steps that take it back, run in reverse when a later step fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rollback:
    """What undoing achieved (``done``) and what it could not (``failed``, with why)."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.failed:
            return ("ROLLBACK INCOMPLETE: " + "; ".join(self.failed)
                    + (f" (undone: {', '.join(self.done)})" if self.done else ""))
        if self.done:
            return f"nothing was published (undone: {', '.join(self.done)})"
        return "nothing was published"


class Undo:
    def __init__(self) -> None:
        self._steps: list[tuple[str, str, Callable[[], object]]] = []

    def push(self, done: str, attempt: str, action: Callable[[], object]) -> None:
        """``done`` reads as what undoing achieved ("removed X"), ``attempt`` as what it
        tried ("remove X"), for the message either way. An action returning False found
        nothing to undo and is not reported."""
        self._steps.append((done, attempt, action))

    def forget(self) -> None:
        """The publish completed: nothing is to be undone any more."""
        self._steps.clear()

    def run(self) -> Rollback:
        result = Rollback()
        while self._steps:
            done, attempt, action = self._steps.pop()
            try:
                undone = action()
            except Exception as err:  # every step is tried, whatever the one before did
                result.failed.append(f"could not {attempt} ({err})")
            else:
                if undone is not False:
                    result.done.append(done)
        return result
