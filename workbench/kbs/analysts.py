"""Analysts the data owner knows: a name, a long-term public key, groups, revocation.

An analyst's key (EC P-256; the browser keeps it non-extractable, ``workbench analyst
keygen`` writes one for Python) certifies each sealed session it opens
(``workbench.sealed.certificate``). The broker judges a session's certificate against
this table when the session attests (the token says who) and again at every release (a
revocation takes effect at once). Every change is an ``admin`` audit record written in the
same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.kbs import audit
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.errors import KbsError
from workbench.kbs.names import check_plain_name, check_plain_names
from workbench.kbs.records import stamp
from workbench.kbs.row_mac import RowKey
from workbench.kbs.store import Store
from workbench.kbs.store.schema import analysts
from workbench.protocol.errors import ErrorKind
from workbench.sealed.certificate import CertificateInvalid, SessionCertificate, fingerprint
from workbench.sealed.keys import key_from_jwk

log = logging.getLogger("workbench.kbs")

# How a session's certificate stands (the token's workbench.analyst "standing").
REGISTERED, UNKNOWN, REVOKED = "registered", "unknown", "revoked"
# A row that does not authenticate under the KEK (workbench.kbs.row_mac).
TAMPERED = "tampered"


@dataclass(frozen=True)
class Analyst:
    name: str
    fingerprint: str
    public_jwk: dict[str, str]
    groups: tuple[str, ...]
    added_at: str
    revoked_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint,
                "public_key": self.public_jwk, "groups": list(self.groups),
                "added_at": self.added_at, "revoked_at": self.revoked_at}


@dataclass(frozen=True)
class Standing:
    """Who a session's certificate speaks for, as of now."""

    standing: str                 # registered | unknown | revoked | invalid | other-kernel ...
    fingerprint: str | None = None
    analyst: Analyst | None = None
    reason: str = ""

    def claim(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "standing": self.standing,
                "name": self.analyst.name if self.analyst else None}


def _analyst(row: Any) -> Analyst:
    return Analyst(row.name, row.fingerprint, json.loads(row.public_jwk),
                   tuple(json.loads(row.groups)), row.added_at, row.revoked_at)


def certifier_fingerprint(certificate: SessionCertificate) -> str | None:
    """The analyst key's fingerprint, or None when the key has no thumbprint (attest
    refuses such a certificate now; a session stored by an older broker may hold one)."""
    try:
        return certificate.analyst_fingerprint
    except ValueError:
        return None


def public_jwk(value: Any) -> dict[str, str]:
    """The analyst's public key as a JWK of its four members; KbsError if it is not one."""
    try:
        key_from_jwk(value)
    except ValueError as err:
        raise KbsError(ErrorKind.INVALID_KEY, f"an analyst's public key must be an EC P-256 "
                                              f"JWK: {err}") from None
    return {k: str(value[k]) for k in ("kty", "crv", "x", "y")}


class Analysts:
    def __init__(self, store: Store, key: BrokerKey, *, clock: Callable[[], datetime],
                 row_key: RowKey) -> None:
        self._store = store
        self._key = key
        self._clock = clock
        self._rows = row_key

    def _audit(self, conn: Connection, action: str, analyst: Analyst, now: datetime) -> None:
        audit.append(conn, self._key, "admin",
                     {"action": action, "analyst": analyst.name,
                      "fingerprint": analyst.fingerprint, "groups": list(analyst.groups)},
                     now)

    def add(self, name: str, jwk: Any, groups: list[str] | None = None) -> Analyst:
        name = check_plain_name(name, "analyst name")
        key = public_jwk(jwk)
        now = self._clock()
        analyst = Analyst(name, fingerprint(key), key, check_plain_names(groups, "analyst groups"),
                          stamp(now))
        try:
            with self._store.write() as conn:
                conn.execute(insert(analysts).values(
                    name=analyst.name, fingerprint=analyst.fingerprint,
                    public_jwk=json.dumps(key, sort_keys=True),
                    groups=json.dumps(list(analyst.groups)), added_at=analyst.added_at))
                self._rows.seal(conn, analysts, analyst.name)
                self._audit(conn, "analyst-add", analyst, now)
        except IntegrityError:
            raise KbsError(ErrorKind.CONFLICT, f"an analyst named {name!r} or with key "
                                               f"{analyst.fingerprint} is registered "
                                               "already") from None
        return analyst

    def list(self) -> list[Analyst]:
        with self._store.read() as conn:
            return [_analyst(r) for r in conn.execute(select(analysts)
                                                      .order_by(analysts.c.name))]

    def revoke(self, name: str) -> Analyst:
        now = self._clock()
        with self._store.write() as conn:
            row = conn.execute(select(analysts).where(analysts.c.name == name)).first()
            if row is None:
                raise KbsError(ErrorKind.NOT_FOUND, f"no analyst named {name!r}")
            if row.revoked_at is not None:
                raise KbsError(ErrorKind.CONFLICT, f"analyst {name!r} was revoked at "
                                                   f"{row.revoked_at} already")
            conn.execute(update(analysts).where(analysts.c.name == name)
                         .values(revoked_at=stamp(now)))
            # Revoking authenticates the row as revoked, whatever else was changed in it:
            # a revoked analyst gets nothing either way.
            self._rows.seal(conn, analysts, name)
            analyst = Analyst(**{**_analyst(row).__dict__, "revoked_at": stamp(now)})
            self._audit(conn, "analyst-revoke", analyst, now)
        return analyst

    def by_fingerprint(self, value: str) -> tuple[Analyst | None, bool]:
        """The analyst registered with key ``value``, and whether their row authenticates
        under the KEK (False: inserted or changed outside the broker)."""
        with self._store.read() as conn:
            row = conn.execute(select(analysts).where(analysts.c.fingerprint == value)).first()
        if row is None:
            return None, True
        return _analyst(row), self._rows.authentic("analysts", row._mapping)

    def standing(self, certificate: SessionCertificate | None, *, session_key: str,
                 kernel_key: str) -> Standing:
        """Judge a session's certificate now: valid, for this session and kernel, and by
        a registered analyst who was not revoked."""
        if certificate is None:
            return Standing("none", reason="the sealed session is not certified by an "
                                           "analyst's key")
        try:
            certificate.verify(session_key=session_key, kernel_key=kernel_key)
        except CertificateInvalid as err:
            return Standing(err.kind, certifier_fingerprint(certificate), reason=str(err))
        found, authentic = self.by_fingerprint(certificate.analyst_fingerprint)
        if found is not None and not authentic:
            log.error("analyst %s: their row does not authenticate under the KEK (changed "
                      "outside the broker); treated as not registered", found.name)
            return Standing(TAMPERED, found.fingerprint,
                            reason=f"the broker's record of analyst key "
                                   f"{found.fingerprint} does not authenticate under the "
                                   "broker's key-encryption key: the database was changed "
                                   "outside the broker")
        if found is None:
            return Standing(UNKNOWN, certificate.analyst_fingerprint,
                            reason=f"unknown analyst: key {certificate.analyst_fingerprint} "
                                   "is not registered with this broker")
        if found.revoked_at is not None:
            return Standing(REVOKED, found.fingerprint, found,
                            reason=f"analyst {found.name} was revoked at {found.revoked_at}")
        return Standing(REGISTERED, found.fingerprint, found)
