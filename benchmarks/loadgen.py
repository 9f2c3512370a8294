"""A bounded load generator for the broker: many concurrent RCAR exchanges on loopback.

Used by the key broker benchmarks here and the load tests (tests/kbs put this folder on
``sys.path``); it stays out of the package because nothing shipped needs a third client of
the protocol. Each worker owns one HTTP connection and runs whole exchanges (auth, attest,
one resource, decrypt) back to back with a fresh ephemeral key and session cookie each
time; it stops after a fixed number of exchanges or when told to. It refuses any host but
loopback, so it cannot be pointed at someone else's server.

The generator shares the broker's cores when both run on one machine, so its own cost per
request counts against the broker's measured rate: it speaks HTTP through aiohttp (about a
quarter of httpx's CPU per request here) and carries the session cookie itself rather than
through a cookie jar.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
from jwcrypto.jwe import JWE
from jwcrypto.jwk import JWK

from workbench.attestation.tee import EvidenceProvider
from workbench.attestation.tee.binding import report_data_for
from workbench.kbs.sessions import session_ref
from workbench.protocol.claims import tee_pubkey_jwk
from workbench.protocol.rcar import (
    ATTEST_PATH,
    AUTH_PATH,
    PROTOCOL_VERSION,
    RESOURCE_PATH,
    SESSION_COOKIE,
    AttestRequest,
    AuthRequest,
    RuntimeData,
)

T = TypeVar("T")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


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
        hello = AuthRequest(version=PROTOCOL_VERSION, tee=provider.tee,
                            extra_params={"resources": [resource]})
        async with client.post(AUTH_PATH, json=hello.wire()) as response:
            nonce = (await response.json())["nonce"]
            cookie = response.cookies.get(SESSION_COOKIE)
        if cookie is None:
            raise ValueError(f"the auth response set no {SESSION_COOKIE} cookie")
        session = {"Cookie": f"{SESSION_COOKIE}={cookie.value}"}
        ref = session_ref(cookie.value)  # as the audit log names it
        key = JWK.generate(kty="EC", crv="P-256")
        pubkey = tee_pubkey_jwk(key.export_public(as_dict=True))
        evidence = provider.evidence(report_data_for(nonce, pubkey))
        attestation = AttestRequest(
            runtime_data=RuntimeData(nonce=nonce, tee_pubkey=pubkey),
            tee_evidence={"evidence": base64.b64encode(evidence).decode()})
        async with client.post(ATTEST_PATH, headers=session,
                               json=attestation.wire()) as response:
            await response.read()
        async with client.get(f"{RESOURCE_PATH}/{resource}", headers=session) as response:
            body = await response.text()
        token = JWE()
        token.deserialize(body, key=key)
        return Outcome(True, time.perf_counter() - start, ref, token.payload)
    except Exception as err:  # an error is a result here, counted by the caller
        return Outcome(False, time.perf_counter() - start, ref,
                       error=f"{type(err).__name__}: {err}"[:300])


async def _drive(url: str, step: Callable[[aiohttp.ClientSession], Awaitable[T]], *,
                 workers: int, per_worker: int | None, duration_s: float | None,
                 stop: asyncio.Event | None, timeout_s: float) -> list[T]:
    """``workers`` clients, one connection each, repeating ``step`` until each did
    ``per_worker`` steps, the time is up or ``stop`` is set; every result, in order."""
    check_loopback(url)
    if per_worker is None and duration_s is None:
        raise ValueError("give a count per worker or a duration: the load must be bounded")
    deadline = time.perf_counter() + duration_s if duration_s is not None else None
    results: list[T] = []
    tls = ssl.create_default_context()

    async def worker() -> None:
        async with _client(url, timeout_s, tls) as client:
            done = 0
            while per_worker is None or done < per_worker:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if stop is not None and stop.is_set():
                    return
                results.append(await step(client))
                done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results


async def run(url: str, provider: EvidenceProvider, resource: str, *, workers: int,
              exchanges_per_worker: int | None = None, duration_s: float | None = None,
              on_outcome: Callable[[Outcome], None] | None = None,
              stop: asyncio.Event | None = None, timeout_s: float = 60.0) -> list[Outcome]:
    """Run ``workers`` concurrent clients until each did its exchanges or time is up."""
    async def step(client: aiohttp.ClientSession) -> Outcome:
        outcome = await exchange(client, provider, resource)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    return await _drive(url, step, workers=workers, per_worker=exchanges_per_worker,
                        duration_s=duration_s, stop=stop, timeout_s=timeout_s)


async def run_then_interrupt(urls: list[str], provider: EvidenceProvider, resource: str, *,
                             workers: int, after: int, interrupt: Callable[[], None],
                             acknowledged: list[str], limit_s: float = 120.0
                             ) -> list[Outcome]:
    """Load every url with ``workers`` clients; once ``after`` releases were acknowledged,
    call ``interrupt`` (say, SIGKILL a broker: other exchanges are in flight then) and stop.
    ``acknowledged`` collects the session of every release a client received; the load
    ends after ``limit_s`` even if the interruption never came."""
    stop = asyncio.Event()

    def count(outcome: Outcome) -> None:
        if outcome.ok:
            acknowledged.append(outcome.session_ref or "")
            if len(acknowledged) == after:
                interrupt()
                stop.set()

    runs = [run(url, provider, resource, workers=workers, duration_s=limit_s,
                on_outcome=count, stop=stop, timeout_s=15) for url in urls]
    return [outcome for outcomes in await asyncio.gather(*runs) for outcome in outcomes]


async def round_trips(url: str, path: str, *, workers: int,
                      requests_per_worker: int | None = None, duration_s: float | None = None,
                      timeout_s: float = 60.0) -> list[float]:
    """Latencies of plain GETs of ``path`` (the baseline a full exchange is compared to)."""
    async def step(client: aiohttp.ClientSession) -> float:
        start = time.perf_counter()
        async with client.get(path) as response:
            await response.read()
        return time.perf_counter() - start

    return await _drive(url, step, workers=workers, per_worker=requests_per_worker,
                        duration_s=duration_s, stop=None, timeout_s=timeout_s)
