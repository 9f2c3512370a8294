"""The data owner's resources: key material sealed under the KEK, a policy, release options.

Every change is an ``admin`` audit record written in the same transaction as the change.
Key material is never logged and never returned by any admin call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.attestation.appraise import Policy, PolicyError, load_policy
from workbench.kbs import audit
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.errors import KbsError
from workbench.kbs.kek import Kek, KekMismatch, Sealed
from workbench.kbs.paths import check_path
from workbench.kbs.release_rules import ReleaseOptions, check_names
from workbench.kbs.row_mac import integrity_rule
from workbench.kbs.store import Store
from workbench.kbs.store.hot import hot
from workbench.kbs.store.schema import audit_log, resources
from workbench.protocol.errors import ErrorKind
from workbench.sealing.keys import fingerprint
from workbench.sealing.resources import FILE_KEYSET_TYPE, TABLE_KEY_TYPE

log = logging.getLogger("workbench.kbs")

MAX_KEY_BYTES = 64 * 1024
TABLE_KEY_BYTES = 32
ACTIVE, REVOKED = "active", "revoked"


def _check_table_key(key: bytes) -> str | None:
    if len(key) != TABLE_KEY_BYTES:
        return f"a table master key is {TABLE_KEY_BYTES} bytes (AES-256), not {len(key)}"
    return None


def _check_keyset(key: bytes) -> str | None:
    try:
        document = json.loads(key)
    except (ValueError, UnicodeDecodeError):
        return "a file keyset must be a Tink keyset in JSON"
    if not isinstance(document, dict) or "key" not in document:
        return "a file keyset must be a Tink JSON keyset (an object with 'key')"
    return None


# Resource type -> what its key material must look like.
KEY_RULES: dict[str, Callable[[bytes], str | None]] = {
    TABLE_KEY_TYPE: _check_table_key,
    FILE_KEYSET_TYPE: _check_keyset,
}


def check_key(path: str, key: bytes) -> bytes:
    if not isinstance(key, bytes) or not 0 < len(key) <= MAX_KEY_BYTES:
        raise KbsError(
            ErrorKind.INVALID_KEY,
            f"{path}: key material must be 1 to {MAX_KEY_BYTES} bytes")
    rule = KEY_RULES.get(path.split("/")[1])
    problem = rule(key) if rule else None
    if problem:
        raise KbsError(ErrorKind.INVALID_KEY, f"{path}: {problem}")
    return key


def parse_policy(document: Any) -> tuple[Policy, str]:
    """A validated policy and the canonical text it is stored as."""
    if not isinstance(document, dict):
        raise KbsError(ErrorKind.INVALID_POLICY, "policy must be a JSON object")
    try:
        policy = load_policy(document)
    except PolicyError as err:
        raise KbsError(ErrorKind.INVALID_POLICY, str(err)) from None
    return policy, json.dumps(document, sort_keys=True, separators=(",", ":"))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ResourceInfo:
    path: str
    status: str
    version: int
    key_length: int
    require_approval: bool
    approval_timeout_s: int
    policy_text: str
    created_at: str
    updated_at: str
    options: ReleaseOptions = field(default_factory=ReleaseOptions)
    # sealing.keys.fingerprint of the key (None: revoked, or not computed on the release
    # path); the data owner compares it with `keyring list` to know the broker holds the
    # key a file was sealed with.
    key_fingerprint: str | None = None

    @property
    def policy_digest(self) -> str:
        return digest(self.policy_text)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "version": self.version,
            "key_length": self.key_length,
            "require_approval": self.require_approval,
            "approval_timeout_s": self.approval_timeout_s,
            "policy_id": json.loads(self.policy_text).get("id"),
            "policy_sha256": self.policy_digest,
            "users": list(self.options.users) or None,
            "groups": list(self.options.groups) or None,
            "key_fingerprint": self.key_fingerprint,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


def _stored(names: tuple[str, ...]) -> str | None:
    return json.dumps(list(names)) if names else None


def _info(row: Any) -> ResourceInfo:
    return ResourceInfo(row.path, row.status, row.version, row.key_length,
                        bool(row.require_approval), row.approval_timeout_s, row.policy,
                        row.created_at, row.updated_at,
                        ReleaseOptions(_names(row.users), _names(row.groups)))


def _context(path: str) -> str:
    return f"resource:{path}"


def first_release(conn: Connection, path: str) -> int | None:
    """The sequence number of the first audit record releasing ``path``, or None.

    Release payloads are canonical JSON, so a substring match finds every candidate; each
    is then parsed, as another path could contain this one's text."""
    needle = f'"resource":{json.dumps(path)}'
    rows = conn.execute(select(audit_log.c.seq, audit_log.c.payload)
                        .where(audit_log.c.kind == "release",
                               audit_log.c.payload.contains(needle, autoescape=True))
                        .order_by(audit_log.c.seq))
    for seq, payload in rows:
        if json.loads(payload).get("resource") == path:
            return seq
    return None


class Registry:
    def __init__(self, store: Store, kek: Kek, key: BrokerKey, *,
                 clock: Callable[[], datetime], default_timeout_s: int) -> None:
        self._store = store
        self._kek = kek
        self._key = key
        self._clock = clock
        self._default_timeout_s = default_timeout_s
        # path -> (info, sealed key): rows as last read. Before acting on an entry (a
        # release, a refusal, an approval request) the release path compares its
        # (status, version, updated_at) with the store's (``is_current``), so an entry
        # another process or replica made stale is re-read, never acted on.
        self._cache: dict[str, tuple[ResourceInfo, Sealed | None]] = {}
        self._cache_lock = threading.Lock()

    def _audit(self, conn: Connection, action: str, info: ResourceInfo, now: datetime,
               **extra: Any) -> None:
        payload = {"action": action, "resource": info.path, "version": info.version,
                   "status": info.status, **extra}
        audit.append(conn, self._key, "admin", payload, now)

    def _row(self, conn: Connection, path: str) -> Any:
        row = conn.execute(select(resources).where(resources.c.path == path)).first()
        if row is None:
            raise KbsError(ErrorKind.RESOURCE_NOT_FOUND, f"resource {path} not found")
        return row

    def _described(self, row: Any) -> ResourceInfo:
        """The row as the admin API shows it: with the fingerprint of its key."""
        info = _info(row)
        if row.key_sealed is None:
            return info
        try:
            key = self._kek.open(Sealed(bytes(row.key_nonce), bytes(row.key_sealed)),
                                 _context(row.path))
        except KekMismatch as err:
            # Listing must not fail on one damaged row; a release of it fails loudly.
            log.error("%s", err)
            return info
        return replace(info, key_fingerprint=fingerprint(key))

    def get(self, path: str) -> ResourceInfo:
        with self._store.read() as conn:
            return self._described(self._row(conn, check_path(path)))

    def list(self) -> list[ResourceInfo]:
        with self._store.read() as conn:
            rows = conn.execute(select(resources).order_by(resources.c.path))
            return [self._described(r) for r in rows]

    def cached(self, path: str) -> tuple[ResourceInfo, Sealed | None]:
        with self._cache_lock:
            entry = self._cache.get(path)
        if entry is None:
            with self._store.read() as conn:
                row = self._row(conn, path)
            if not self._kek.row_key.authentic("resources", row._mapping):
                # Never cached: the owner's `kbs policy set` restores it, and the next
                # request reads it again.
                log.error("resource %s: its row does not authenticate under the KEK (changed "
                          "outside the broker); refusing it until the owner sets its policy "
                          "again", path)
                raise KbsError(ErrorKind.POLICY_DENY,
                               f"the broker's record of {path} does not authenticate under "
                               "the broker's key-encryption key: the database was changed "
                               "outside the broker; nothing is released until the data owner "
                               "sets its policy again",
                               failed_rules=[integrity_rule(f"the record of {path}")])
            sealed = (Sealed(bytes(row.key_nonce), bytes(row.key_sealed))
                      if row.key_sealed is not None else None)
            entry = (_info(row), sealed)
            with self._cache_lock:
                self._cache[path] = entry
        return entry

    def invalidate(self, path: str) -> None:
        with self._cache_lock:
            self._cache.pop(path, None)

    def stamp(self, conn: Connection, path: str) -> tuple[str, int, str] | None:
        """(status, version, updated_at) as the store has it now, inside ``conn``."""
        row = hot(conn).run(conn, "resource_stamp", {"path": path}).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def is_current(self, info: ResourceInfo, conn: Connection | None = None) -> bool:
        """Whether ``info`` is the row as the store has it now (inside ``conn`` if given)."""
        if conn is None:
            with self._store.read() as reading:
                return self.is_current(info, reading)
        return self.stamp(conn, info.path) == (info.status, info.version, info.updated_at)

    def key_material(self, info: ResourceInfo, sealed: Sealed | None) -> bytes:
        """The plaintext key of an active resource, from its ``cached`` entry (for a
        release only)."""
        if info.status != ACTIVE or sealed is None:
            raise KbsError(ErrorKind.RESOURCE_REVOKED, f"resource {info.path} was revoked")
        return self._kek.open(sealed, _context(info.path))

    def add(self, path: str, key: bytes, policy_document: Any, *, require_approval: bool,
            approval_timeout_s: int | None, users: list[str] | None = None,
            groups: list[str] | None = None) -> ResourceInfo:
        path = check_path(path)
        check_key(path, key)
        policy, text = parse_policy(policy_document)
        options = ReleaseOptions(check_names(users, "users"), check_names(groups, "groups"))
        timeout = approval_timeout_s or self._default_timeout_s
        sealed = self._kek.seal(key, _context(path))
        now = self._clock()
        stamp = now.isoformat(timespec="microseconds")
        try:
            with self._store.write() as conn:
                conn.execute(insert(resources).values(
                    path=path, policy=text, require_approval=require_approval,
                    approval_timeout_s=timeout, status=ACTIVE, version=1,
                    key_nonce=sealed.nonce, key_sealed=sealed.ciphertext, key_length=len(key),
                    created_at=stamp, updated_at=stamp, users=_stored(options.users),
                    groups=_stored(options.groups),
                ))
                self._kek.row_key.seal(conn, resources, path)
                info = self._described(self._row(conn, path))
                self._audit(conn, "resource-add", info, now, policy_id=policy.id,
                            policy_sha256=info.policy_digest, key_length=len(key),
                            require_approval=require_approval, approval_timeout_s=timeout,
                            **options.to_json())
        except IntegrityError:
            raise KbsError(ErrorKind.CONFLICT, f"resource {path} already exists; use 'kbs resource "
                                       "rotate' or 'kbs policy set' to change it") from None
        self.invalidate(path)
        return info

    def rotate(self, path: str, key: bytes | None) -> ResourceInfo:
        path = check_path(path)
        now = self._clock()
        with self._store.write() as conn:
            row = self._row(conn, path)
            if row.status != ACTIVE:
                raise KbsError(
                    ErrorKind.RESOURCE_REVOKED,
                    f"resource {path} was revoked; add a new one")
            if key is None:
                if row.key_length != TABLE_KEY_BYTES:
                    raise KbsError(
                        ErrorKind.INVALID_KEY,
                        f"{path}: give the new key material with --file "
                        "(only 32-byte keys are generated)")
                key = os.urandom(TABLE_KEY_BYTES)
            check_key(path, key)
            sealed = self._kek.seal(key, _context(path))
            conn.execute(update(resources).where(resources.c.path == path).values(
                key_nonce=sealed.nonce, key_sealed=sealed.ciphertext, key_length=len(key),
                version=row.version + 1, updated_at=now.isoformat(timespec="microseconds"),
            ))
            self._kek.row_key.seal(conn, resources, path)
            info = self._described(self._row(conn, path))
            self._audit(conn, "resource-rotate", info, now, key_length=len(key))
        self.invalidate(path)
        return info

    def revoke(self, path: str) -> ResourceInfo:
        path = check_path(path)
        now = self._clock()
        with self._store.write() as conn:
            row = self._row(conn, path)
            if row.status == REVOKED:
                raise KbsError(ErrorKind.CONFLICT, f"resource {path} is already revoked")
            # Destroy the key material: a revoked key must not be recoverable from the store.
            conn.execute(update(resources).where(resources.c.path == path).values(
                status=REVOKED, key_nonce=None, key_sealed=None,
                updated_at=now.isoformat(timespec="microseconds"),
            ))
            self._kek.row_key.seal(conn, resources, path)
            info = _info(self._row(conn, path))
            self._audit(conn, "resource-revoke", info, now)
        self.invalidate(path)
        return info

    def delete(self, path: str) -> ResourceInfo:
        """Remove a resource no kernel ever received: how a publish that failed half-way
        takes back the key it registered. A released key can only be revoked, so the
        release records in the audit log always name a resource the owner can still see
        (revoked or not)."""
        path = check_path(path)
        now = self._clock()
        with self._store.write() as conn:
            info = self._described(self._row(conn, path))
            # Appending first takes the audit head's lock, which a release holds while it
            # records itself, so the check below sees every release committed before.
            self._audit(conn, "resource-delete", info, now)
            released = first_release(conn, path)
            if released is not None:
                raise KbsError(ErrorKind.CONFLICT,
                               f"resource {path} was released (audit record {released}): "
                               "a key a kernel received cannot be deleted, only revoked "
                               "('kbs resource revoke')")
            conn.execute(delete(resources).where(resources.c.path == path))
        self.invalidate(path)
        return replace(info, status="deleted")

    def set_policy(self, path: str, policy_document: Any, *, require_approval: bool | None,
                   approval_timeout_s: int | None, users: list[str] | None = None,
                   groups: list[str] | None = None) -> ResourceInfo:
        """Replace the policy; release options given (not None) replace theirs, an empty
        list of users or groups lifts that restriction."""
        path = check_path(path)
        policy, text = parse_policy(policy_document)
        names = {column: _stored(check_names(given, column))
                 for column, given in (("users", users), ("groups", groups))
                 if given is not None}
        now = self._clock()
        with self._store.write() as conn:
            row = self._row(conn, path)
            values: dict[str, Any] = {"policy": text,
                                      "updated_at": now.isoformat(timespec="microseconds")}
            if require_approval is not None:
                values["require_approval"] = require_approval
            if approval_timeout_s is not None:
                values["approval_timeout_s"] = approval_timeout_s
            values.update(names)
            conn.execute(update(resources).where(resources.c.path == row.path).values(**values))
            # Setting the policy again is also how the owner restores a row that was
            # changed outside the broker: it is authenticated as the owner now states it.
            self._kek.row_key.seal(conn, resources, path)
            info = self._described(self._row(conn, path))
            self._audit(conn, "policy-set", info, now, policy_id=policy.id,
                        policy_sha256=info.policy_digest,
                        require_approval=info.require_approval,
                        approval_timeout_s=info.approval_timeout_s, **info.options.to_json())
        self.invalidate(path)
        return info
