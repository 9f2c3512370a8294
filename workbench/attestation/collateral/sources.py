"""Base URLs tried in order for each service; the first good answer wins.

An answer is good when it is HTTP 200 with a body no larger than ``MAX_BODY``; anything
else (refused connection, timeout, 404, 5xx) moves to the next URL, and when none answers
the error lists every URL with its reason.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote

from workbench.attestation.collateral.requests import CollateralRequest

MAX_BODY = 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0


class FetchFailed(Exception):
    """No configured URL gave an answer; ``str()`` names each URL and why."""


@dataclass(frozen=True)
class Fetched:
    url: str
    body: bytes
    # The signer's chain from the response header, URL-decoded PEM (b"" if none).
    chain: bytes = b""


@dataclass(frozen=True)
class Sources:
    pcs: tuple[str, ...] = ()
    kds: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    def urls(self, request: CollateralRequest) -> list[str]:
        bases = self.pcs if request.service == "pcs" else self.kds
        return [base.rstrip("/") + request.key for base in bases]

    def fetch(self, request: CollateralRequest) -> Fetched:
        urls = self.urls(request)
        if not urls:
            raise FetchFailed(f"no {request.service.upper()} URL is configured for "
                              f"{request.key}")
        failures = []
        for url in urls:
            try:
                return _get(url, request, self.timeout_s)
            except FetchFailed as err:
                failures.append(f"{url}: {err}")
        raise FetchFailed("; ".join(failures))


def _get(url: str, request: CollateralRequest, timeout_s: float) -> Fetched:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            body = response.read(MAX_BODY + 1)
            header = response.headers.get(request.chain_header, "") if request.chain_header \
                else ""
    except urllib.error.HTTPError as err:
        raise FetchFailed(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FetchFailed(f"unreachable ({reason})") from None
    if len(body) > MAX_BODY:
        raise FetchFailed(f"answer larger than {MAX_BODY} bytes")
    if request.chain_header and not header:
        raise FetchFailed(f"answer lacks the {request.chain_header} header")
    return Fetched(url, body, unquote(header).encode("ascii", "replace"))
