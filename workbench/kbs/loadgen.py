"""A bounded load generator for the broker: many concurrent RCAR exchanges on loopback.

Used by the load tests and ``benchmarks/bench_kbs.py``. Each worker owns one HTTP
connection and runs whole exchanges (auth, attest, one resource, decrypt) back to back
with a fresh ephemeral key and session cookie each time; it stops after a fixed number of
exchanges or when told to. It refuses any host but loopback, so it cannot be pointed at
someone else's server.

The generator shares the broker's cores when both run on one machine, so its own cost per
request counts against the broker's measured rate: it speaks HTTP through aiohttp (about a
quarter of httpx's CPU per request here) and carries the session cookie itself rather than
through a cookie jar.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from jwcrypto.jwe import JWE
from jwcrypto.jwk import JWK

from workbench.attestation.tee import EvidenceProvider
from workbench.attestation.tee.binding import report_data_for
from workbench.kbs.config import PROTOCOL_VERSION
from workbench.kbs.protocol import SESSION_COOKIE

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
KEY_ALG = "ECDH-ES+A256KW"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    latency_s: float
    session_ref: str | None = None
    key: bytes | None = None
    error: str | None = None


def _client(url: str, timeout_s: float, tls: ssl.SSLContext) -> aiohttp.ClientSession:
    # One connection per simulated client; one TLS context shared by all of them (building
    # a context per client costs tens of milliseconds of CPU each).
    return aiohttp.ClientSession(
        base_url=url, connector=aiohttp.TCPConnector(limit=1, ssl=tls),
        timeout=aiohttp.ClientTimeout(total=timeout_s), cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=True)


async def _json(response: aiohttp.ClientResponse) -> Any:
    async with response:
        return await response.json()


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"load generation is for loopback only, not {host!r}")


async def exchange(client: aiohttp.ClientSession, provider: EvidenceProvider, resource: str
                   ) -> Outcome:
    """One full exchange on ``client``, in a session of its own."""
    start = time.perf_counter()
    ref = None
    try:
        async with client.post("/kbs/v0/auth", json={
                "version": PROTOCOL_VERSION, "tee": provider.tee,
                "extra-params": {"resources": [resource]}}) as response:
            nonce = (await response.json())["nonce"]
            cookie = response.cookies.get(SESSION_COOKIE)
        if cookie is None:
            raise ValueError(f"the auth response set no {SESSION_COOKIE} cookie")
        session = {"Cookie": f"{SESSION_COOKIE}={cookie.value}"}
        ref = hashlib.sha256(cookie.value.encode()).hexdigest()[:16]
        key = JWK.generate(kty="EC", crv="P-256")
        public = key.export_public(as_dict=True)
        pubkey = {"kty": "EC", "crv": "P-256", "alg": KEY_ALG, "x": public["x"],
                  "y": public["y"]}
        evidence = provider.evidence(report_data_for(nonce, pubkey))
        await _json(await client.post("/kbs/v0/attest", headers=session, json={
            "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
            "tee-evidence": {"evidence": base64.b64encode(evidence).decode()}}))
        async with client.get(f"/kbs/v0/resource/{resource}", headers=session) as response:
            body = await response.text()
        token = JWE()
        token.deserialize(body, key=key)
        return Outcome(True, time.perf_counter() - start, ref, token.payload)
    except Exception as err:  # an error is a result here, counted by the caller
        return Outcome(False, time.perf_counter() - start, ref,
                       error=f"{type(err).__name__}: {err}"[:300])


async def run(url: str, provider: EvidenceProvider, resource: str, *, workers: int,
              exchanges_per_worker: int | None = None, duration_s: float | None = None,
              on_outcome: Callable[[Outcome], None] | None = None,
              stop: asyncio.Event | None = None, timeout_s: float = 60.0) -> list[Outcome]:
    """Run ``workers`` concurrent clients until each did its exchanges or time is up."""
    check_loopback(url)
    if exchanges_per_worker is None and duration_s is None:
        raise ValueError("give exchanges_per_worker or duration_s: the load must be bounded")
    deadline = time.perf_counter() + duration_s if duration_s is not None else None
    outcomes: list[Outcome] = []
    tls = ssl.create_default_context()

    async def worker() -> None:
        async with _client(url, timeout_s, tls) as client:
            done = 0
            while exchanges_per_worker is None or done < exchanges_per_worker:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if stop is not None and stop.is_set():
                    return
                outcome = await exchange(client, provider, resource)
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return outcomes


async def round_trips(url: str, path: str, *, workers: int,
                      requests_per_worker: int | None = None, duration_s: float | None = None,
                      timeout_s: float = 60.0) -> list[float]:
    """Latencies of plain GETs of ``path`` (the baseline a full exchange is compared to)."""
    check_loopback(url)
    if requests_per_worker is None and duration_s is None:
        raise ValueError("give requests_per_worker or duration_s: the load must be bounded")
    deadline = time.perf_counter() + duration_s if duration_s is not None else None
    latencies: list[float] = []
    tls = ssl.create_default_context()

    async def worker() -> None:
        async with _client(url, timeout_s, tls) as client:
            done = 0
            while requests_per_worker is None or done < requests_per_worker:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                start = time.perf_counter()
                async with client.get(path) as response:
                    await response.read()
                latencies.append(time.perf_counter() - start)
                done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies
