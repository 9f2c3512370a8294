"""The kernel application: ipykernel's, with a CurveZMQ key pair only this process holds.

ipykernel serves CurveZMQ with whatever pair the connection file carries (the manager's). This
app ignores any such pair: it generates its own before the sockets are bound, serves every
channel with it, never writes the secret anywhere, and publishes the public key next to the
connection file for the provisioner (see :mod:`workbench.kernel.transport`).

What the host hands the process is not trusted either: its command line gives the
connection file and nothing else (:mod:`workbench.kernel.cmdline`), and its stdout and
stderr receive the kernel's log but nothing a cell writes (:mod:`workbench.kernel.streams`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ipykernel.kernelapp import IPKernelApp

from workbench.kernel.cmdline import connection_file
from workbench.kernel.streams import CapturedOutStream, host_log_stream
from workbench.kernel.transport import (
    generate_key_pair,
    publish_server_key,
    raw_key,
    server_key_path,
)

# IPython keeps every cell's source in a SQLite file under the profile (PHI included, world
# readable by default); a confidential kernel keeps its history in memory only.
IN_MEMORY = ":memory:"


class ConfidentialKernelApp(IPKernelApp):
    name = "confidential-python-kernel"

    # A confidential kernel runs only the code it is sent (and, once locked, only what the
    # analyst's session seals). IPython's profile holds code the machine's operator can
    # write: config files are Python, startup files and exec_lines run in the user
    # namespace, extensions are imported. None of it is loaded.

    def parse_command_line(self, argv: Sequence[str] | None = None) -> None:
        """Take the connection file from the command line, and nothing else.

        Nothing reaches traitlets' parser: the command line is the host's, unmeasured
        (``workbench.kernel.cmdline``); CommandLineRefused names what is refused.
        """
        path = connection_file(sys.argv[1:] if argv is None else argv, os.environ)
        if path is not None:
            self.connection_file = path

    def load_config_file(self, *_args: Any, **_kwargs: Any) -> None:
        self.log.info("confidential kernel: IPython config files are not loaded")

    def init_extensions(self) -> None:
        return None

    def init_code(self) -> None:
        # What the base class does after running the profile's code, without running it.
        sys.stdout.flush()
        sys.stderr.flush()
        if self.shell is not None:
            self.shell._sys_modules_keys = set(sys.modules.keys())

    def init_kernel(self) -> None:
        # After every config file was read (one could name a history file) and before the
        # shell, which reads this setting when it starts, exists.
        self.config.HistoryManager.hist_file = IN_MEMORY
        super().init_kernel()

    def init_io(self) -> None:
        # Whatever settings came with the process: a cell's output, from Python or from
        # descriptors 1 and 2, reaches only IOPub (sealed under a lock), never the host's
        # descriptors; the kernel's log goes to the host's stderr on a descriptor of its
        # own, which carries nothing a cell writes.
        self.outstream_class = f"{CapturedOutStream.__module__}.{CapturedOutStream.__name__}"
        self.capture_fd_output = True
        self.quiet = True
        # Before the capture: ipykernel would otherwise wrap (and, once that wrapper is
        # dropped, close) the descriptor its stderr stream restores fd 2 from at shutdown.
        log_stream = host_log_stream()
        for handler in self.log.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log_stream)
        super().init_io()

    def init_sockets(self) -> None:
        # A pair from the connection file is known to whoever wrote the file: replace it.
        self.curve_publickey, self.curve_secretkey = generate_key_pair()
        super().init_sockets()

    def write_connection_file(self, **kwargs: Any) -> None:
        """The connection file without CURVE keys; the public key goes to its own file."""
        public, secret = self.curve_publickey, self.curve_secretkey
        self.curve_publickey = self.curve_secretkey = None
        try:
            super().write_connection_file(**kwargs)
        finally:
            self.curve_publickey, self.curve_secretkey = public, secret
        assert public is not None
        publish_server_key(server_key_path(self.abs_connection_file), public)

    @property
    def transport_key(self) -> bytes:
        """The raw public key the kernel's channels are served with (bound in attestation)."""
        return raw_key(self.curve_publickey) if self.curve_publickey is not None else b""
