"""A daemon thread that renews cached collateral ahead of its nextUpdate.

Verifications never wait for a refresh: they are served from the cache while an entry is
valid. A failed refresh is logged as a warning and retried on the next round; an entry
that expires anyway is refused by the service (never served).
"""

from __future__ import annotations

import logging
import threading

from workbench.attestation.collateral.service import CollateralService

log = logging.getLogger("workbench.collateral")


class Refresher:
    def __init__(self, service: CollateralService, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collateral-refresh",
                                        daemon=True)

    def start(self) -> Refresher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.service.refresh_due()
            except Exception:  # the thread must outlive any one bad round
                log.exception("collateral refresh round failed; retrying next round")
