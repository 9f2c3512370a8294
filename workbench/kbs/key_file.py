"""The broker's key file: its public keys, written beside its store for the data owner.

``audit verify`` must not take the broker's keys from the database it checks (whoever can
write that database can insert a key of their own), so the broker publishes them outside
it: at every start it writes ``broker-keys.jwks`` (a JWK set, 0644, written atomically) in
its home, the directory of a SQLite store or ``$WORKBENCH_HOME/kbs`` for a server database.
The data owner copies that file (or the fingerprints in it) somewhere the broker's host
cannot reach; ``audit verify`` reads the file in place only as the default.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from sqlalchemy import select

from workbench.kbs import audit
from workbench.kbs.broker_key import own_public_jwks
from workbench.kbs.config import default_state_dir
from workbench.kbs.kek import Kek
from workbench.kbs.store import Store, sqlite_path
from workbench.kbs.store.schema import audit_log
from workbench.sealing.atomic import atomic_output

log = logging.getLogger("workbench.kbs")

KEY_FILE_NAME = "broker-keys.jwks"


def kbs_home(db_url: str) -> Path:
    """The broker's home for the store at ``db_url``."""
    path = sqlite_path(db_url)
    return path.parent if path is not None else default_state_dir()


def key_file_path(db_url: str) -> Path:
    return kbs_home(db_url) / KEY_FILE_NAME


def write_key_file(path: Path, public_jwks: list[dict[str, Any]]) -> None:
    """Replace ``path`` with the JWK set of ``public_jwks`` (readers see old or new, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps({"keys": public_jwks}, indent=2, sort_keys=True) + "\n"
    with atomic_output(path, mode=0o644) as handle:
        handle.write(text.encode())


def publish_keys(store: Store, kek: Kek, db_url: str) -> dict[str, ec.EllipticCurvePublicKey]:
    """Write the broker's key file (its own keys, outside the database) and return them
    by kid; warn about key rows that are not the broker's and a head it did not sign."""
    with store.read() as conn:
        own, foreign = own_public_jwks(conn, kek)
        head_kid = conn.execute(select(audit_log.c.kid).where(
            audit_log.c.seq == audit.read_head(conn).seq)).scalar()
    for kid in foreign:
        log.error("the store holds a broker key %s whose private half does not open under "
                  "the key-encryption key: it is not this broker's key (inserted by someone "
                  "with write access to the database?); left out of the key file", kid)
    keys = {jwk["kid"]: JWK(**jwk).get_op_key("verify") for jwk in own}
    if head_kid is not None and head_kid not in keys:
        log.error("the last audit record is signed by key %s, which is not this broker's: "
                  "the log may have been rewritten; run `workbench audit verify` with your "
                  "copy of the key file and your checkpoints", head_kid)
    path = key_file_path(db_url)
    try:
        write_key_file(path, own)
    except OSError as err:
        log.error("cannot write the broker's key file %s (%s)", path, err)
    return keys
