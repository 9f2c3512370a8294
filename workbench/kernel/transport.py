"""The kernel's channels under CurveZMQ, with a key pair only the kernel holds.

jupyter_client 8.10 / ipykernel 7.4 encrypt kernel channels with CurveZMQ, but the key pair
is the *manager's*: it writes ``curve_publickey`` and ``curve_secretkey`` into the connection
file, the kernel serves with that pair and every client connects with it too. Whoever can
read the connection file (the host) can then impersonate the kernel. Here the kernel makes
its own pair in memory when it starts; the secret never leaves the process:

1. The provisioner writes the connection file without CURVE keys (ports, HMAC key).
2. The kernel generates its pair (``zmq.curve_keypair``), serves every channel with it and
   publishes only the public key, atomically, in ``<connection file>.server-key``.
3. The provisioner waits for that file and returns the key as ``curve_publickey`` in the
   connection info, with no ``curve_secretkey``: the *server key* of the kernel.
4. Clients (managers, kernel clients: :func:`curve_capable` classes) connect with a fresh
   key pair of their own per socket and that server key. The CURVE handshake succeeds only
   with the process holding the matching secret.
5. The kernel binds the raw 32-byte public key into its attestation report data
   (``report_data_for(nonce, tee_pubkey, transport_key)``); a client compares the key its
   evidence binds with the server key it is connected with
   (``workbench.client.check.verify_connection``, and the lab server's ``transport-key``
   check) and refuses a difference.

Stock jupyter_client code cannot use such connection info (it needs the secret key to
connect), so the provisioner turns the manager that starts a confidential kernel, and the
clients it hands out, into :func:`curve_capable` subclasses of themselves.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.connect import channel_socket_types
from jupyter_client.manager import KernelManager
from zmq.utils import z85

from workbench.errors import WorkbenchError

SERVER_KEY_SUFFIX = ".server-key"
SERVER_KEY_FORMAT = "workbench-kernel-server-key/1"
CURVE_KEY_BYTES = 32
Z85_KEY_CHARS = 40


class TransportError(WorkbenchError):
    """The kernel's transport key is missing, malformed, or not the one its evidence binds."""


# -- keys -------------------------------------------------------------------------------------

def raw_key(encoded: bytes | str) -> bytes:
    """The 32 raw bytes of a Z85-encoded CurveZMQ key (what the attestation binds)."""
    text = encoded.encode("ascii") if isinstance(encoded, str) else bytes(encoded)
    if len(text) != Z85_KEY_CHARS:
        raise TransportError(f"a CurveZMQ key is {Z85_KEY_CHARS} Z85 characters, not "
                             f"{len(text)}")
    try:
        raw = z85.decode(text)
    except (ValueError, KeyError, IndexError):
        raise TransportError("the CurveZMQ key is not valid Z85") from None
    return bytes(raw)


def z85_key(raw: bytes) -> bytes:
    if len(raw) != CURVE_KEY_BYTES:
        raise TransportError(f"a CurveZMQ key is {CURVE_KEY_BYTES} bytes, not {len(raw)}")
    return z85.encode(raw)


def generate_key_pair() -> tuple[bytes, bytes]:
    """(public, secret), Z85; the kernel keeps the secret in memory only."""
    if not zmq.has("curve"):
        raise TransportError("this libzmq has no CurveZMQ support (built without libsodium): "
                             "the kernel's channels cannot be encrypted")
    return zmq.curve_keypair()


def server_key_path(connection_file: str | os.PathLike[str]) -> Path:
    """Where a kernel started with ``connection_file`` publishes its public key."""
    return Path(f"{os.fspath(connection_file)}{SERVER_KEY_SUFFIX}")


def publish_server_key(path: Path, public_z85: bytes) -> None:
    """Write the public key atomically (readers never see a partial file)."""
    document = json.dumps({"format": SERVER_KEY_FORMAT, "curve_publickey":
                           public_z85.decode("ascii"), "pid": os.getpid()})
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(document)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_server_key(path: Path) -> bytes | None:
    """The published public key (Z85), or None while the kernel has not written it."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise TransportError(f"{path}: not a kernel server key file ({err})") from None
    if not isinstance(document, dict) or document.get("format") != SERVER_KEY_FORMAT:
        raise TransportError(f"{path}: not a kernel server key file (format)")
    key = str(document.get("curve_publickey", "")).encode("ascii")
    raw_key(key)
    return key


# -- the client side: connect with our own key pair to the kernel's server key ----------------

def client_socket(context: zmq.Context[Any], socket_type: int, server_key: bytes) -> Any:
    """A socket that connects as a CurveZMQ client with a fresh key pair of its own."""
    socket = context.socket(socket_type)
    public, secret = zmq.curve_keypair()
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_key
    return socket


class ServerKeyConnection:
    """Mixin for jupyter_client's ConnectionFileMixin classes (managers and clients).

    ``curve_publickey`` without ``curve_secretkey`` means: the kernel's server key, and we
    are a client of it. Upstream's pair (both keys, the manager's) keeps upstream behaviour.
    """

    curve_publickey: bytes | None
    curve_secretkey: bytes | None

    def load_connection_info(self, info: dict[str, Any]) -> None:
        super().load_connection_info(info)  # type: ignore[misc]
        public = info.get("curve_publickey")
        if public and not info.get("curve_secretkey"):
            self.curve_publickey = public.encode("ascii") if isinstance(public, str) else public
            self.curve_secretkey = None

    def get_connection_info(self, session: bool = False) -> dict[str, Any]:
        info = super().get_connection_info(session=session)  # type: ignore[misc]
        if self.curve_publickey is not None and self.curve_secretkey is None:
            info["curve_publickey"] = self.curve_publickey.decode("ascii")
        return info

    def _create_connected_socket(self, channel: str, identity: bytes | None = None) -> Any:
        if self.curve_publickey is None or self.curve_secretkey is not None:
            return super()._create_connected_socket(channel, identity)  # type: ignore[misc]
        socket = client_socket(self.context, channel_socket_types[channel],  # type: ignore[attr-defined]
                               self.curve_publickey)
        socket.linger = 1000
        if identity:
            socket.identity = identity
        socket.connect(self._make_url(channel))  # type: ignore[attr-defined]
        return socket


class ServerKeyManager(ServerKeyConnection):
    """A manager whose clients are :class:`ServerKeyConnection` clients too."""

    def client(self, **kwargs: Any) -> Any:
        client = super().client(**kwargs)  # type: ignore[misc]
        return adopt(client)


_ADOPTED: dict[type, type] = {}


def curve_capable(cls: type) -> type:
    """``cls`` with the server-key behaviour mixed in (built once per class)."""
    if issubclass(cls, ServerKeyConnection):
        return cls
    found = _ADOPTED.get(cls)
    if found is None:
        mixin = ServerKeyManager if issubclass(cls, KernelManager) else ServerKeyConnection
        found = _ADOPTED[cls] = type(cls.__name__, (mixin, cls),
                                     {"__module__": cls.__module__,
                                      "__doc__": cls.__doc__})
    return found


def adopt(obj: Any) -> Any:
    """Give an existing manager or client the server-key behaviour, in place.

    The provisioner does this to whatever manager starts a confidential kernel (jupyter_client,
    Jupyter Server, Kernel Gateway, nbclient), before any socket exists: the mixin adds no
    state, only methods, so the object stays what it was otherwise.
    """
    cls = curve_capable(type(obj))
    if type(obj) is not cls:
        obj.__class__ = cls
    return obj


# Ready-made classes for code that starts kernels itself (e.g. ``KernelManager(...)``).
CurveKernelManager = curve_capable(KernelManager)


def server_key(obj: Any) -> bytes | None:
    """The raw server key a manager or client connects to the kernel with (None: plaintext,
    or upstream's shared pair, where the client holds the secret too)."""
    public = getattr(obj, "curve_publickey", None)
    if public is None or getattr(obj, "curve_secretkey", None) is not None:
        return None
    return raw_key(public)
