"""The kernel's stdout and stderr: what a cell writes, at any level, reaches IOPub only.

ipykernel captures descriptors 1 and 2 through pipes (so ``os.system``, subprocesses and C
libraries reach the frontend), but its watcher also copies every captured byte to the
descriptor the kernel was started with, and ``fileno()`` hands that descriptor to
subprocesses: the host's log, the operator's, would get a sealed cell's output in the
clear. Here the pipes are the only place descriptors 1 and 2 lead; the kernel's own log
keeps the host's stderr on a descriptor of its own (:func:`host_log_stream`).
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from typing import Any, TextIO

from ipykernel.iostream import PIPE_BUFFER_SIZE, OutStream

HOST_STDERR = 2


class CapturedOutStream(OutStream):
    """ipykernel's OutStream, always capturing its descriptor, never copying it out."""

    def __init__(self, session: Any, pub_thread: Any, name: str, pipe: Any = None,
                 echo: Any = None, *, watchfd: Any = True, isatty: bool = False) -> None:
        # Captured even when the environment says pytest runs (ipykernel then leaves the
        # descriptors alone, and the environment is the host's to set); echoed never.
        super().__init__(session, pub_thread, name, pipe, None, watchfd="force",
                         isatty=isatty)

    def fileno(self) -> int:
        """The captured descriptor itself (now the pipe), for subprocesses to write to."""
        return int(self._original_stdstream_fd)

    def _watch_pipe_fd(self) -> None:
        if self._fid is None:
            return
        # Incremental: a character split across two reads is not mangled.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            chunk = os.read(self._fid, PIPE_BUFFER_SIZE)
            while chunk and self._should_watch:
                self.write(decoder.decode(chunk))
                chunk = os.read(self._fid, PIPE_BUFFER_SIZE)
        except Exception:
            self._exc = sys.exc_info()


def host_log_stream() -> TextIO:
    """A stream on a copy of the host's stderr, made before descriptor 2 is captured.

    The copy is not inherited by subprocesses (``os.dup``), so only the kernel's own log
    lines reach it.
    """
    descriptor = os.dup(HOST_STDERR)
    return io.TextIOWrapper(io.FileIO(descriptor, "w"), encoding="utf-8",
                            errors="replace", line_buffering=True)
