"""Broker keys a frontend has pinned, as SSH's known_hosts pins host keys.

A sealed frontend trusts a broker's token only under the key it pinned for that broker:
the first use pins the key and says its fingerprint (for the analyst to compare with what
the data owner published, ``workbench kbs fingerprint``); a later different key is refused
with both fingerprints. The browser keeps its pins in the browser; Python clients here, in
``$WORKBENCH_HOME/known_brokers.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jwcrypto.jwk import JWK

from workbench.errors import WorkbenchError
from workbench.home import workbench_home
from workbench.sealed.certificate import fingerprint

__all__ = ["BrokerKeyChanged", "Pinned", "fingerprint", "known_brokers_path", "pin"]

KNOWN_BROKERS = "known_brokers.json"
_write_lock = threading.Lock()


class BrokerKeyChanged(WorkbenchError):
    """The broker's key is not the one pinned for it: refuse, loudly."""

    def __init__(self, broker: str, pinned: str, presented: str, where: Path) -> None:
        super().__init__(
            f"the key broker at {broker} signed with key {presented}, but this client pinned "
            f"{pinned} for it ({where}): refusing to trust the kernel. If the data owner "
            "really replaced the broker's key, compare the new fingerprint with what they "
            "published and remove the old pin from that file")
        self.pinned, self.presented = pinned, presented


@dataclass(frozen=True)
class Pinned:
    broker: str
    fingerprint: str
    first_use: bool


def known_brokers_path() -> Path:
    return workbench_home() / KNOWN_BROKERS


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise WorkbenchError(f"cannot read the pinned broker keys in {path}: {err}") from None
    if not isinstance(document, dict):
        raise WorkbenchError(f"{path} is not a JSON object of broker URL -> pinned key")
    return document


def pin(broker: str, jwk: dict[str, Any], *, expected: str | None = None,
        path: Path | None = None) -> Pinned:
    """Check ``jwk`` against the pin for ``broker`` (pin it on first use).

    ``expected``: a fingerprint the analyst was given; it replaces trust on first use.
    """
    where = path or known_brokers_path()
    presented = fingerprint(jwk)
    if expected is not None:
        if expected != presented:
            raise BrokerKeyChanged(broker, expected, presented, where)
    with _write_lock:
        known = _read(where)
        entry = known.get(broker)
        if isinstance(entry, dict) and entry.get("fingerprint"):
            if entry["fingerprint"] != presented:
                raise BrokerKeyChanged(broker, str(entry["fingerprint"]), presented, where)
            return Pinned(broker, presented, first_use=False)
        known[broker] = {"fingerprint": presented, "jwk": JWK(**jwk).export_public(
            as_dict=True), "pinned_at": datetime.now(UTC).isoformat(timespec="seconds")}
        where.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=where.parent, delete=False,
                                         prefix=".known_brokers") as handle:
            json.dump(known, handle, indent=2)
        os.replace(handle.name, where)
    return Pinned(broker, presented, first_use=True)
