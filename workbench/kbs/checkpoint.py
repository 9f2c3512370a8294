"""Signed checkpoints of the audit chain: "record S has hash H", signed by the broker key.

Each record's hash covers the record before it, so a checkpoint of record S vouches for
records 1..S as they were when it was issued. Kept outside the broker's database (the data
owner's copy from ``workbench audit checkpoint``, or a witness directory or URL the broker
pushes to), it turns a rewritten or shortened log into a contradiction that ``workbench
audit verify --checkpoint`` reports, even when the rewrite left a chain that verifies.

The signed message is a domain tag, a newline and the canonical JSON of every field but the
signature; the tag keeps a checkpoint signature from being passed off as a record's (whose
message starts with a number) and the other way round.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection

from workbench.errors import InputError, about
from workbench.kbs.audit import Anchor, canonical, read_head
from workbench.kbs.broker_key import BrokerKey

VERSION = 1
DOMAIN = "workbench-audit-checkpoint/1"
MAX_BYTES = 16 * 1024
_HASH = re.compile(r"^[0-9a-f]{64}$")
# field -> type of its JSON value: what a checkpoint document must hold, and nothing else.
FIELDS: dict[str, type] = {"v": int, "broker": str, "seq": int, "hash": str, "time": str,
                           "kid": str, "signature": str}


@dataclass(frozen=True)
class Checkpoint:
    v: int
    broker: str
    seq: int
    hash: str
    time: str
    kid: str
    signature: str

    def message(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if k != "signature"}
        return f"{DOMAIN}\n{canonical(fields)}".encode()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def anchor(self, source: str) -> Anchor:
        return Anchor(self.seq, self.hash,
                      f"checkpoint {source} (seq {self.seq}, time {self.time})")


def issue(key: BrokerKey, broker: str, seq: int, digest: str, now: datetime) -> Checkpoint:
    """A checkpoint of record ``seq`` (whose hash is ``digest``), signed by ``key``."""
    unsigned = Checkpoint(VERSION, broker, seq, digest, now.isoformat(timespec="microseconds"),
                          key.kid, "")
    signature = key.private_key.sign(unsigned.message(), ec.ECDSA(hashes.SHA256()))
    return Checkpoint(**{**asdict(unsigned), "signature": base64.b64encode(signature).decode()})


def of_head(conn: Connection, key: BrokerKey, broker: str, now: datetime) -> Checkpoint:
    head = read_head(conn)
    return issue(key, broker, head.seq, head.hash, now)


def parse(document: Any, source: str) -> Checkpoint:
    """A checkpoint from its JSON document; InputError naming ``source`` and the field."""
    if not isinstance(document, dict):
        raise InputError(about(source, "a checkpoint must be a JSON object"))
    missing = [name for name in FIELDS if name not in document]
    extra = sorted(set(document) - set(FIELDS))
    if missing or extra:
        raise InputError(about(source, "not a checkpoint: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(extra)}" if extra else "") if part)))
    for name, kind in FIELDS.items():
        value = document[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise InputError(about(source, f"checkpoint field '{name}' must be a "
                                           f"{kind.__name__}"))
    if document["v"] != VERSION:
        raise InputError(about(source, f"checkpoint version {document['v']} is not "
                                       f"{VERSION}"))
    if document["seq"] < 1 or not _HASH.match(document["hash"]):
        raise InputError(about(source, "checkpoint seq must be positive and hash 64 "
                                       "lowercase hex digits"))
    return Checkpoint(**document)


def read(path: str | Path) -> Checkpoint:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as err:
        raise InputError(about(path, f"cannot read checkpoint ({err.strerror or err})")) \
            from None
    if len(raw) > MAX_BYTES:
        raise InputError(about(path, f"checkpoint is larger than {MAX_BYTES} bytes"))
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(about(path, f"checkpoint is not valid JSON ({err})")) from None
    return parse(document, str(path))


def check_signature(checkpoint: Checkpoint, keys: dict[str, ec.EllipticCurvePublicKey],
                    source: str) -> None:
    """InputError unless ``checkpoint`` is signed by one of the broker's ``keys``: a
    checkpoint the broker did not sign says nothing about its log."""
    key = keys.get(checkpoint.kid)
    if key is None:
        raise InputError(about(source, f"checkpoint is signed by key {checkpoint.kid}, which "
                                       "is not one of the broker's keys"))
    try:
        key.verify(base64.b64decode(checkpoint.signature, validate=True),
                   checkpoint.message(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise InputError(about(source, "checkpoint signature does not verify under the "
                                       f"broker's key {checkpoint.kid}: it was altered "
                                       "or forged")) from None


def save(point: Checkpoint, path: Path) -> None:
    """Write ``point`` to the new file ``path`` (0644), whole or not at all; an existing
    file is never replaced (os.link fails rather than overwrite)."""
    data = (json.dumps(point.to_json(), indent=2) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise InputError(about(path, "already exists: a checkpoint is evidence, so each "
                                         "one goes to a new file")) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
