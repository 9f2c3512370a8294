"""Median time to verify a real SEV-SNP report with its VCEK chain, against parsing alone.

    .venv/bin/python benchmarks/bench_verify_snp.py [--iterations N]

Target (issue 3): verification under 2 ms median on this machine. Three figures, each the
median of N individually timed calls in this process:
  parse      parse_report alone (the baseline)
  verify     verify_report with the VCEK: endorsement key, product, VCEK->ASK->ARK chain,
             report signature, signer, TCB and chip id (what a broker does per request); the
             remembered report signatures are emptied before each call, since every
             configfs-tsm request brings a fresh report
  cold       the same with all the verifier's caches emptied before every call (pinned
             ASK->ARK and remembered VCEK->ASK signatures, AMD extension decoding, pinned
             summaries, certificate names): a first request
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from timing import median_ms

from workbench.attestation.formats.snp import parse_report
from workbench.attestation.verify import amd_extensions
from workbench.attestation.verify import certs as cert_names
from workbench.attestation.verify import snp as snp_verify

TARGET_MS = 2.0
VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "sev-snp"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _clear_caches() -> None:
    snp_verify._VERIFIED_PINNED_LINKS.clear()
    snp_verify._VERIFIED_ENDORSEMENT_LINKS.clear()
    snp_verify._VERIFIED_REPORT_SIGNATURES.clear()
    cert_names.common_name.cache_clear()
    snp_verify._summary.cache_clear()
    snp_verify._pinned_der.cache_clear()
    amd_extensions._decode_values.cache_clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args(argv)
    if not VECTORS.is_dir():
        print(f"bench_verify_snp: vectors not found at {VECTORS}", file=sys.stderr)
        return 2
    report = (VECTORS / "go-sev-guest-attestation.bin").read_bytes()
    certs = [(VECTORS / "go-sev-guest-vcek.der").read_bytes()]

    def fresh_report() -> None:
        snp_verify._VERIFIED_REPORT_SIGNATURES.clear()

    parse_ms = median_ms(lambda: parse_report(report), args.iterations)
    verify_ms = median_ms(
        lambda: snp_verify.verify_report(report, now=NOW, certs=certs), args.iterations,
        fresh_report,
    )
    cold_ms = median_ms(
        lambda: snp_verify.verify_report(report, now=NOW, certs=certs),
        max(args.iterations // 4, 1),
        _clear_caches,
    )
    print(f"SEV-SNP report (go-sev-guest, Milan VCEK), median of {args.iterations} calls")
    rows = (
        ("parse only (baseline)", parse_ms),
        ("verify with chain", verify_ms),
        ("verify, caches emptied", cold_ms),
    )
    for label, ms in rows:
        print(f"  {label:<24} {ms * 1000:8.1f} us   ratio {ms / parse_ms:6.1f}x")
    verdict = "met" if verify_ms < TARGET_MS else "NOT met"
    print(f"  target < {TARGET_MS:.0f} ms median: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
