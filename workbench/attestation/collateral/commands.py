"""``workbench collateral fetch|import|list``: prime and inspect the collateral cache.

For an air-gapped broker: ``fetch`` on a connected machine into a folder (``--cache``),
carry the folder over, ``import`` it into the broker's cache. Imported entries are read
exactly as fetched ones (each must parse as what its request asks for) and are used only
until their own nextUpdate; signatures are checked at verification, as always.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.errors import InputError, about

MAX_EVIDENCE_BYTES = 1024 * 1024


def _cache(args: argparse.Namespace) -> Any:
    """The cache ``--cache`` names, or the broker's."""
    from workbench.attestation.collateral.cache import CollateralCache
    from workbench.attestation.collateral.service import default_cache_dir

    return CollateralCache(args.cache or default_cache_dir())


def _service(args: argparse.Namespace) -> Any:
    from workbench.attestation.collateral.service import CollateralService
    from workbench.attestation.collateral.sources import Sources

    return CollateralService(_cache(args),
                             Sources(pcs=tuple(args.pcs_url), kds=tuple(args.kds_url)))


def _dcap_requests(data: bytes, name: str) -> list[Any]:
    from workbench.attestation.collateral import pcs
    from workbench.attestation.formats.dcap import parse_quote
    from workbench.attestation.verify.certs import common_name
    from workbench.attestation.verify.intel_chain import load_pck_chain
    from workbench.attestation.verify.intel_extensions import pck_extensions

    quote = parse_quote(data)
    try:
        chain = load_pck_chain(quote.certification.data)
        fmspc = pck_extensions(chain.certs[0]).fmspc
        ca = common_name(chain.certs[1])
    except (ValueError, IndexError) as err:
        raise InputError(about(name, f"no usable PCK chain in the quote ({err})")) from None
    if ca not in pcs.PCK_CA_PARAM:
        raise InputError(about(name, f"PCK certificate issued by '{ca}', not a PCK CA"))
    return [pcs.tcb_info(quote.tee, fmspc), pcs.qe_identity(quote.tee), pcs.pck_crl(ca),
            pcs.root_crl()]


def _snp_requests(data: bytes, name: str, product: str | None) -> list[Any]:
    from workbench.attestation.collateral import kds
    from workbench.attestation.formats.snp import parse_report

    report = parse_report(data)
    line = product or report.product
    if line is None:
        raise InputError(about(name, "the report (version 2) does not name its product "
                                     "line: give --product milan|genoa"))
    tcb = report.tcb("reported", line).to_dict()
    return [kds.vcek(line, report.chip_id, tcb), kds.cert_chain(line), kds.crl(line)]


def _requests_for(path: str, product: str | None) -> list[Any]:
    from workbench.attestation.formats.detect import detect_tee
    from workbench.attestation.formats.errors import MalformedEvidence

    try:
        data = Path(path).read_bytes()[:MAX_EVIDENCE_BYTES + 1]
    except OSError as err:
        raise InputError(about(path, f"cannot read evidence: {err.strerror or err}")) from None
    try:
        kind = detect_tee(data)
        if kind in ("sgx", "tdx"):
            return _dcap_requests(data, path)
        if kind == "snp":
            return _snp_requests(data, path, product)
    except MalformedEvidence as err:
        raise InputError(about(path, f"not evidence: {err}")) from None
    raise InputError(about(path, f"{kind} evidence needs no fetched collateral"))


def _fetch(args: argparse.Namespace) -> int:
    from workbench.attestation.collateral import pcs

    if not args.pcs_url and not args.kds_url:
        raise InputError("give the service to fetch from: --pcs-url URL and/or --kds-url URL")
    requests = [r for path in args.evidence for r in _requests_for(path, args.product)]
    for tee in args.tee:
        for fmspc in args.fmspc:
            try:
                value = bytes.fromhex(fmspc)
            except ValueError:
                raise InputError(f"--fmspc: '{fmspc}' is not hex") from None
            requests.append(pcs.tcb_info(tee, value))
        requests.append(pcs.qe_identity(tee))
    if args.fmspc and not args.tee:
        raise InputError("--fmspc needs --tee sgx and/or --tee tdx")
    if not requests:
        raise InputError("nothing to fetch: give evidence files, or --tee with --fmspc")
    service = _service(args)
    for request in dict.fromkeys(requests):
        entry = service.prime(request)
        print(f"fetched {entry.url} (valid until {entry.next_update.isoformat()})")
    print(f"cache: {service.cache.folder}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from workbench.attestation.collateral.cache import SUFFIX, read_entry_file

    cache = _cache(args)
    files: list[Path] = []
    for given in map(Path, args.source):
        files.extend(sorted(given.glob("*" + SUFFIX)) if given.is_dir() else [given])
    if not files:
        raise InputError("no cache entries (*.json) found to import")
    for file in files:
        entry = read_entry_file(file)
        cache.write(entry)
        print(f"imported {entry.request.key} from {entry.url} "
              f"(valid until {entry.next_update.isoformat()})")
    return 0


def _list(args: argparse.Namespace) -> int:
    cache = _cache(args)
    now = datetime.now(UTC)
    rows = [{"kind": e.request.kind, "request": e.request.key, "url": e.url,
             "fetched_at": e.fetched_at.isoformat(), "next_update": e.next_update.isoformat(),
             "status": "valid" if e.usable(now) else "expired"} for e in cache.entries()]
    if args.json:
        print(json.dumps({"cache": str(cache.folder), "entries": rows}, indent=2))
        return 0
    print(f"cache: {cache.folder} ({len(rows)} entries)")
    for row in rows:
        print(f"  {row['status']:7} {row['kind']:11} until {row['next_update']}  {row['url']}")
    return 0


def _add_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", metavar="DIR",
                        help="cache folder (default: the broker's, $WORKBENCH_HOME/kbs/"
                             "collateral)")


def register(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("collateral", help="fetch, import and list cached Intel/AMD "
                                                   "collateral (PCS, PCCS, THIM, KDS)")
    sub = top.add_subparsers(dest="collateral_command", metavar="COMMAND")
    sub.required = True
    fetch = sub.add_parser("fetch", help="fetch the collateral of evidence (or FMSPCs) into "
                                         "the cache")
    fetch.add_argument("evidence", metavar="FILE", nargs="*",
                       help="DCAP quote or SEV-SNP report whose collateral to fetch")
    fetch.add_argument("--pcs-url", action="append", default=[], metavar="URL",
                       help="PCS v4-compatible base URL (PCCS, THIM, Intel PCS); repeat to "
                            "try several in order")
    fetch.add_argument("--kds-url", action="append", default=[], metavar="URL",
                       help="AMD KDS-compatible base URL; repeatable")
    fetch.add_argument("--tee", action="append", default=[], choices=("sgx", "tdx"),
                       help="fetch the QE identity (and with --fmspc the TCB info) of this TEE")
    fetch.add_argument("--fmspc", action="append", default=[], metavar="HEX",
                       help="platform FMSPC whose TCB info to fetch (a fleet: repeat)")
    fetch.add_argument("--product", choices=("milan", "genoa", "turin"),
                       help="product line of a version 2 SEV-SNP report")
    _add_cache(fetch)
    fetch.set_defaults(func=_fetch)
    imp = sub.add_parser("import", help="copy cache entries (from another machine's fetch) "
                                        "into the cache")
    imp.add_argument("source", nargs="+", metavar="PATH", help="entry files or folders")
    _add_cache(imp)
    imp.set_defaults(func=_import)
    lst = sub.add_parser("list", help="list cached collateral and its validity")
    lst.add_argument("--json", action="store_true", help="print one JSON document")
    _add_cache(lst)
    lst.set_defaults(func=_list)
