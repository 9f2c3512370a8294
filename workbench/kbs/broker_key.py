"""The broker's own signing key (EC P-256): signs EAR tokens and audit records.

Generated on first start, stored sealed under the KEK, published as a JWK set. The store
also keeps a KEK check value, so starting with the wrong KEK fails at once with a clear
message instead of at the first release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from sqlalchemy import Connection, insert, select

from workbench.kbs.kek import Kek, KekMismatch, Sealed
from workbench.kbs.store import Store
from workbench.kbs.store.schema import broker_keys, meta

KEK_CHECK = "kek-check"
_KEK_CHECK_PLAINTEXT = b"workbench-kbs key-encryption key check v1"


@dataclass(frozen=True)
class BrokerKey:
    kid: str
    jwk: JWK
    public_jwk: dict[str, Any]
    private_key: ec.EllipticCurvePrivateKey

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


def _context(kid: str) -> str:
    return f"broker-key:{kid}"


def _from_jwk(jwk: JWK) -> BrokerKey:
    kid = jwk.thumbprint()
    public = json.loads(jwk.export_public())
    public.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return BrokerKey(kid=kid, jwk=jwk, public_jwk=public, private_key=jwk.get_op_key("sign"))


def check_kek(conn: Connection, kek: Kek) -> None:
    row = conn.execute(select(meta.c.value).where(meta.c.key == KEK_CHECK)).first()
    if row is None:
        sealed = kek.seal(_KEK_CHECK_PLAINTEXT, KEK_CHECK)
        conn.execute(insert(meta).values(key=KEK_CHECK, value=sealed.nonce + sealed.ciphertext))
        return
    value = bytes(row.value)
    try:
        ok = kek.open(Sealed(value[:12], value[12:]), KEK_CHECK) == _KEK_CHECK_PLAINTEXT
    except KekMismatch:
        ok = False
    if not ok:
        raise KekMismatch("this store was sealed under a different key-encryption key; "
                          "give the KEK it was created with (--kek-file or $WORKBENCH_KBS_KEK)")


def load_or_create(store: Store, kek: Kek) -> BrokerKey:
    with store.write() as conn:
        # Replicas starting together would each find no key and each create one (and each
        # insert the KEK check): the first creates, the others then read what it made.
        store.serialize_setup(conn)
        check_kek(conn, kek)
        row = conn.execute(select(broker_keys).where(broker_keys.c.active.is_(True))).first()
        if row is not None:
            pem = kek.open(Sealed(bytes(row.private_nonce), bytes(row.private_sealed)),
                           _context(row.kid))
            return _from_jwk(JWK.from_pem(pem))
        key = _from_jwk(JWK.generate(kty="EC", crv="P-256"))
        sealed = kek.seal(key.jwk.export_to_pem(private_key=True, password=None),
                          _context(key.kid))
        conn.execute(insert(broker_keys).values(
            kid=key.kid, public_jwk=json.dumps(key.public_jwk, sort_keys=True),
            private_nonce=sealed.nonce, private_sealed=sealed.ciphertext,
            created_at=datetime.now(UTC).isoformat(), active=True,
        ))
        return key


def own_public_jwks(conn: Connection, kek: Kek) -> tuple[list[dict[str, Any]], list[str]]:
    """The broker's own public keys, and the kids of ``broker_keys`` rows that are not.

    A row is the broker's when its private half opens under the KEK (AES-GCM with the kid
    as associated data): someone who can write the database but lacks the KEK cannot make
    one. The public half is derived from that private key, never read from the row's
    ``public_jwk`` column, which anyone with write access could change."""
    own, foreign = [], []
    for row in conn.execute(select(broker_keys).order_by(broker_keys.c.created_at)):
        try:
            pem = kek.open(Sealed(bytes(row.private_nonce), bytes(row.private_sealed)),
                           _context(row.kid))
            key = _from_jwk(JWK.from_pem(pem))
        except (KekMismatch, JWException, ValueError, TypeError):
            foreign.append(row.kid)
            continue
        if key.kid != row.kid:
            foreign.append(row.kid)
            continue
        own.append(key.public_jwk)
    return own, foreign


def public_keys(conn: Connection) -> dict[str, ec.EllipticCurvePublicKey]:
    """Every key in the ``broker_keys`` table, by kid, as the table says. Whoever can write
    the table can add to it, so ``audit verify`` uses these only when pinned."""
    keys = {}
    for row in conn.execute(select(broker_keys.c.kid, broker_keys.c.public_jwk)):
        try:
            keys[row.kid] = JWK.from_json(row.public_jwk).get_op_key("verify")
        except (JWException, ValueError, TypeError):
            continue  # not a key at all: nothing a pin could name
    return keys
