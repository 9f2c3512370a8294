"""A TCP forwarder that records every byte between a Jupyter client and a kernel.

It stands where anyone on the path (another process on the host, the network) could read
the kernel's traffic: the client connects to the tap's ports, the tap connects to the
kernel's, and keeps a copy of both directions. It does not understand ZeroMQ; it only sees
what crosses the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class WireTap:
    def __init__(self, ip: str, ports: dict[str, int]) -> None:
        self._ip = ip
        self._targets = ports
        self.ports: dict[str, int] = {}
        self._captured = bytearray()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.AbstractServer] = []

    @property
    def captured(self) -> bytes:
        with self._lock:
            return bytes(self._captured)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                with self._lock:
                    self._captured.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, channel: str) -> None:
        target = self._targets[channel]

        async def handle(client_reader: asyncio.StreamReader,
                         client_writer: asyncio.StreamWriter) -> None:
            try:
                kernel_reader, kernel_writer = await asyncio.open_connection(self._ip, target)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(self._pipe(client_reader, kernel_writer),
                                 self._pipe(kernel_reader, client_writer),
                                 return_exceptions=True)

        server = await asyncio.start_server(handle, self._ip, 0)
        self._servers.append(server)
        self.ports[channel] = server.sockets[0].getsockname()[1]

    def start(self) -> WireTap:
        self._thread.start()
        for channel in CHANNELS:
            asyncio.run_coroutine_threadsafe(self._serve(channel), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def tapped(ip: str, ports: dict[str, int]) -> Iterator[WireTap]:
    tap = WireTap(ip, ports).start()
    try:
        yield tap
    finally:
        tap.stop()
