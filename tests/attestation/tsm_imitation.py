"""An imitation of the configfs-tsm report interface, serving recorded evidence.

It watches for the report entry the provider creates, fills it with the kernel's attributes
(FIFOs where the kernel answers a read), answers ``generation`` before and after, takes the
64-byte inblob and serves the quote as outblob, then removes its files so the provider's
rmdir finds the entry empty.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


class FakeTsm(threading.Thread):
    def __init__(self, root: Path, outblob: bytes, provider: str, *, auxblob: bytes = b"",
                 final_generation: int | str = 1, clean: bool = True) -> None:
        super().__init__(daemon=True)
        self.reports = root / "report"
        self.reports.mkdir(parents=True)
        self.outblob, self.provider, self.auxblob = outblob, provider, auxblob
        self.final_generation = final_generation
        self.clean = clean
        self.inblob: bytes | None = None
        self.error: BaseException | None = None

    def _entry(self) -> Path:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            entries = list(self.reports.iterdir())
            if entries:
                return entries[0]
            time.sleep(0.002)
        raise TimeoutError("no report entry was created")

    @staticmethod
    def _serve(fifo: Path, data: bytes) -> None:
        with fifo.open("wb") as handle:
            handle.write(data)

    def run(self) -> None:
        try:
            entry = self._entry()
            if self.auxblob:
                (entry / "auxblob").write_bytes(self.auxblob)
            (entry / "provider").write_text(self.provider + "\n")
            for name in ("generation", "outblob", "inblob"):
                os.mkfifo(entry / name)
            first = b"0\n" if isinstance(self.final_generation, int) else b"zero\n"
            self._serve(entry / "generation", first)
            with (entry / "inblob").open("rb") as handle:
                self.inblob = handle.read()
            self._serve(entry / "outblob", self.outblob)
            # Clean up before the last answer, so the entry is empty when the reader rmdirs.
            with (entry / "generation").open("wb") as handle:
                for child in entry.iterdir():
                    if self.clean:
                        child.unlink()
                handle.write(f"{self.final_generation}\n".encode())
        except BaseException as err:  # surfaced by finish()
            self.error = err

    def finish(self) -> None:
        self.join(timeout=10)
        assert not self.is_alive(), "the imitation is still waiting for the provider"
        if self.error:
            raise self.error


def guest_dev(base: Path, *devices: str) -> Path:
    """A /dev with the named guest devices (which tell the provider the TEE type)."""
    dev = base / "dev"
    dev.mkdir()
    for device in devices:
        (dev / device).write_bytes(b"")
    return dev
