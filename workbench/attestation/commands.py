"""CLI: ``verify`` (evidence, optionally against a policy), ``measure``, ``policy init``.

``verify`` exits 0 when the evidence verifies (and, with ``--policy``, the policy accepts
it), 1 when a check fails or the policy refuses it, 2 when the input is malformed or
unreadable. It prints every check and every rule, so a refusal always says why.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.errors import EXIT_INVALID, EXIT_MALFORMED, InputError, WorkbenchError, about

MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
# `verify --type` choices; kept here so the CLI parser does not import the verifiers.
TEE_TYPE_CHOICES = ("auto", "sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm", "simulated")
MAX_CERT_BYTES = 1024 * 1024
BLOB_CLAIMS = ("report_data",)


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise InputError(f"--now: '{text}' is not an ISO 8601 time") from None
    # A date or time without an offset is taken as UTC, the time base of all evidence.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _read(path: str, limit: int, what: str) -> bytes:
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except IsADirectoryError:
        raise InputError(about(path, f"is a folder, not {what}")) from None
    except OSError as err:
        raise InputError(about(path, f"cannot read {what}: {err.strerror or err}")) from None
    if len(data) > limit:
        raise InputError(about(path, f"larger than {limit} bytes: not {what}"))
    return data


def _expected_report_data(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 64:
        raise InputError("--report-data: expected 128 hex digits (64 bytes)")
    return value


def _nonce(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if not 1 <= len(value) <= 64:
        raise InputError("--nonce: expected 2 to 128 hex digits (1 to 64 bytes)")
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


def _print_evidence(path: str, evidence: Any) -> None:
    banner = "  [SIMULATED: not hardware-protected]" if evidence.simulated else ""
    print(f"evidence: {path}")
    print(f"tee: {evidence.tee}{banner}")
    print("checks:")
    for check in evidence.checks:
        print(f"  {'ok' if check.ok else 'FAILED':6} {check.name}: {check.detail}")
    print("claims:")
    for name, value in evidence.claims.items():
        print(f"  {name}: {_show(value)}")
    if evidence.tee in ("sgx", "tdx", "az-tdx-vtpm"):
        status = evidence.tcb_status or "not evaluated (no --collateral)"
        advisories = f" (advisories: {', '.join(evidence.advisory_ids)})" \
            if evidence.advisory_ids else ""
        print(f"tcb status: {status}{advisories}")
    if evidence.chain:
        print("certificate chain:")
        for cert in evidence.chain:
            print(f"  {cert.subject} (valid until {cert.not_after.date().isoformat()})")


def _print_appraisal(appraisal: Any, policy_path: str) -> None:
    print(f"policy: {appraisal.policy_id} ({policy_path})")
    print("rules:")
    for rule in appraisal.rules:
        mark = "FAIL" if not rule.passed else "WARN" if rule.warning else "pass"
        print(f"  {mark:4} {rule.name}: {rule.reason}")
        if not rule.passed:
            print(f"       expected: {_show(rule.expected)}; actual: {_show(rule.actual)}")


def _verify(args: argparse.Namespace) -> int:
    from workbench.attestation.formats.errors import MalformedEvidence
    from workbench.attestation.verify import verify_evidence
    from workbench.attestation.verify.result import EvidenceRejected

    now = _parse_now(args.now)
    expected = _expected_report_data(args.report_data)
    nonce = _nonce(args.nonce)
    data = _read(args.file, MAX_EVIDENCE_BYTES, "evidence")
    certs = [_read(c, MAX_CERT_BYTES, "a certificate") for c in args.certs]
    platform_keys = [_read(k, MAX_CERT_BYTES, "a public key") for k in args.platform_key]
    policy = None
    if args.policy:
        from workbench.attestation.appraise import load_policy

        policy = load_policy(args.policy)
    collateral = None
    if args.collateral:
        from workbench.attestation.verify.collateral import load_collateral_dir

        collateral = load_collateral_dir(args.collateral, issuer_chain=args.collateral_chain)
    elif args.pcs_url or args.kds_url or args.collateral_cache:
        from workbench.attestation.collateral.service import open_service

        collateral = open_service(args.collateral_cache, pcs_urls=tuple(args.pcs_url),
                                  kds_urls=tuple(args.kds_url))
    report: dict[str, Any] = {"file": args.file, "evaluated_at": now.isoformat()}
    try:
        evidence = verify_evidence(
            data, tee=args.type, now=now, certs=certs, collateral=collateral,
            simulated_keys=platform_keys or None, nonce=nonce,
        )
    except MalformedEvidence as err:
        return _fail(args, report, "malformed", str(err), EXIT_MALFORMED)
    except EvidenceRejected as err:
        report["checks"] = [c.to_json() for c in err.checks]
        if not args.json:
            print(f"evidence: {args.file}")
            for check in err.checks:
                print(f"  {'ok' if check.ok else 'FAILED':6} {check.name}: {check.detail}")
            print(f"verdict: INVALID ({err.check}: {err.reason})")
        return _fail(args, report, "invalid", f"{err.check}: {err.reason}", EXIT_INVALID)
    except (ValueError, TypeError) as err:
        return _fail(args, report, "malformed", f"cannot process evidence ({err})",
                     EXIT_MALFORMED)
    report["evidence"] = evidence.to_json()
    if policy is None:
        report["result"] = "valid"
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            _print_evidence(args.file, evidence)
            print("verdict: VALID (no --policy given: signatures and chain only, "
                  "not whether to trust this code)")
        return 0
    from workbench.attestation.appraise import appraise

    appraisal = appraise(evidence, policy, now=now, expected_report_data=expected)
    report["appraisal"] = appraisal.to_json()
    report["result"] = "affirmed" if appraisal.passed else "refused"
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_evidence(args.file, evidence)
        _print_appraisal(appraisal, args.policy)
        if appraisal.passed:
            print(f"verdict: {appraisal.status.value.upper()} (accepted by policy "
                  f"{appraisal.policy_id})")
        else:
            failed = ", ".join(r.name for r in appraisal.failed_rules)
            print(f"verdict: CONTRAINDICATED (refused by policy {appraisal.policy_id}: "
                  f"{failed})")
    return 0 if appraisal.passed else EXIT_INVALID


def _fail(args: argparse.Namespace, report: dict[str, Any], result: str, reason: str,
          code: int) -> int:
    if args.json:
        print(json.dumps({**report, "result": result, "reason": reason}, indent=2))
    print(f"workbench: error: {args.file}: {reason}", file=sys.stderr)
    return code


def _verify_guarded(args: argparse.Namespace) -> int:
    try:
        return _verify(args)
    except WorkbenchError:
        raise
    except Exception as err:  # a parser bug must not become a traceback for the user
        raise InputError(
            about(args.file, f"could not be processed ({type(err).__name__}: {err}); "
                  "this is a workbench bug, please report it")
        ) from None


def _measure(args: argparse.Namespace) -> int:
    from workbench.attestation.tee.measure import (
        default_kernels_dir,
        default_package_dir,
        measure_install,
    )
    from workbench.attestation.verify import platform_key

    measured = measure_install()
    key_path = platform_key.public_key_path()
    key = None
    if key_path.is_file():
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        loaded = load_pem_public_key(key_path.read_bytes())
        key = platform_key.fingerprint(loaded)  # type: ignore[arg-type]
    document = {
        **measured.to_json(),
        "package_dir": str(default_package_dir()),
        "kernels_dir": str(default_kernels_dir()),
        "platform_key": {"path": str(key_path), "sha256": key},
    }
    if not args.manifest:
        document.pop("manifest")
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    kernels = default_kernels_dir()
    print("reference values of this install (simulated TEE)")
    print(f"measurement (sha384): {measured.measurement}")
    print(f"  covers {measured.package_files} files of the workbench package "
          f"({default_package_dir()})")
    print(f"  covers {measured.kernelspec_files} kernelspec files ({kernels}"
          f"{'' if kernels.is_dir() else ': absent'})")
    print(f"  covers the interpreter: {measured.interpreter}")
    print(f"platform key: {'sha256:' + key if key else 'not created yet'} ({key_path})")
    if args.manifest:
        print("manifest:")
        for line in measured.manifest:
            print(f"  {line}")
    print("hardware TEEs measure the deployed image themselves: run `workbench verify "
          "--json` on its evidence to read mrenclave / mrtd / measurement.")
    return 0


def _pcr_list(text: str) -> tuple[int, ...]:
    try:
        indices = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--pcrs: '{text}' is not a comma-separated list of PCR numbers"
                         ) from None
    if not indices or any(not 0 <= i <= 23 for i in indices) or len(set(indices)) != len(indices):
        raise InputError(f"--pcrs: '{text}': give distinct PCR numbers from 0 to 23")
    return indices


def _evidence_policy(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    # Verified first: a policy is never captured from evidence nobody checked.
    from workbench.attestation.appraise.reference import DEFAULT_PCRS, policy_from_evidence
    from workbench.attestation.formats.errors import MalformedEvidence
    from workbench.attestation.verify import verify_evidence
    from workbench.attestation.verify.result import EvidenceRejected

    data = _read(args.from_evidence, MAX_EVIDENCE_BYTES, "evidence")
    certs = [_read(c, MAX_CERT_BYTES, "a certificate") for c in args.certs]
    try:
        evidence = verify_evidence(data, now=_parse_now(args.now), certs=certs)
    except MalformedEvidence as err:
        raise InputError(about(args.from_evidence, f"is not evidence: {err}")) from None
    except EvidenceRejected as err:
        raise WorkbenchError(about(args.from_evidence, "does not verify, so no policy is "
                                   f"written from it: {err.check}: {err.reason}")) from None
    pcrs = _pcr_list(args.pcrs) if args.pcrs else DEFAULT_PCRS
    digest = evidence.claims.get(_first_pin(evidence.tee)) or evidence.tee
    try:
        document = policy_from_evidence(
            evidence, policy_id=args.id or f"{evidence.tee}-{str(digest)[:12]}",
            name=f"Accepts the {evidence.tee} evidence captured in {Path(args.from_evidence).name} "
                 "(written by `workbench policy init --from-evidence`)",
            pcrs=pcrs, allow_simulation=bool(args.allow_simulation))
    except ValueError as err:
        raise InputError(about(args.from_evidence, str(err))) from None
    refs = document["reference_values"][evidence.tee]
    summary = ", ".join(sorted(refs))
    return document, f"pins {summary} of {evidence.tee} evidence {args.from_evidence}"


def _first_pin(tee: str) -> str:
    from workbench.attestation.verify.claims import declared

    tee_claims = declared(tee)
    return tee_claims.measurement if tee_claims else "measurement"


def _policy_init(args: argparse.Namespace) -> int:
    from workbench.attestation.appraise import load_policy
    from workbench.attestation.tee.measure import measure_install

    if args.from_evidence:
        document, summary = _evidence_policy(args)
        return _write_policy(args, document, summary,
                             "note: captured reference values are trust on first use: check "
                             "them against what you built before relying on this policy")
    if args.certs or args.pcrs or args.now:
        raise InputError("--certs, --pcrs and --now apply with --from-evidence only")
    measured = measure_install()
    document = {
        "id": args.id or f"workbench-install-{measured.measurement[:12]}",
        "name": "Accepts exactly this install of the workbench (written by "
                "`workbench policy init`)",
        "allowed_tee": ["simulated"],
        "reference_values": {"simulated": {"measurement": measured.measurement}},
        "debug_allowed": False,
        "accepted_tcb_statuses": ["UpToDate"],
        "max_evidence_age_s": 300,
        "allow_simulation": bool(args.allow_simulation),
    }
    if args.sealed:
        document["sealed_session"] = "required"
    load_policy(document)  # what we write must load
    note = (
        "note: allow_simulation is false, so this policy refuses simulated evidence; pass "
        "--allow-simulation to accept it (simulated evidence protects nothing from this "
        "machine's operator)"
    )
    summary = f"accepts measurement {measured.measurement[:16]}… of this install"
    return _write_policy(args, document, summary, None if args.allow_simulation else note)


def _write_policy(args: argparse.Namespace, document: dict[str, Any], summary: str,
                  note: str | None) -> int:
    text = json.dumps(document, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        if note:
            print(note, file=sys.stderr)
        return 0
    out = Path(args.out)
    try:
        with out.open("w" if args.force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise WorkbenchError(about(out, "exists; pass --force to overwrite it")) from None
    except OSError as err:
        raise InputError(about(out, f"cannot write: {err.strerror or err}")) from None
    print(f"wrote policy {document['id']} to {out}: {summary}")
    if note:
        print(note)
    return 0


def _cce_hash(args: argparse.Namespace) -> int:
    from workbench.attestation.appraise.cce import cce_host_data
    from workbench.attestation.formats.errors import MalformedEvidence

    data = _read(args.file, MAX_EVIDENCE_BYTES, "a CCE policy")
    try:
        host_data, form = cce_host_data(data, args.format)
    except MalformedEvidence as err:
        raise InputError(about(args.file, str(err))) from None
    snippet = {"reference_values": {"snp": {"host_data": host_data}}}
    if args.json:
        print(json.dumps({"file": args.file, "form": form, "host_data": host_data,
                          "policy_snippet": snippet}, indent=2))
        return 0
    print(host_data)
    print(f"(SHA-256 of the CCE policy read as {form}: the SEV-SNP HOST_DATA of an ACI "
          "container group launched with it; pin it in a policy as", json.dumps(snippet),
          ")", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify", help="verify attestation evidence (SGX, TDX, SEV-SNP, Azure vTPM or simulated)",
        description="Verify evidence; with --policy, appraise it. Exit 0 valid, 1 invalid or "
                    "refused by policy, 2 malformed or unreadable.",
    )
    verify.add_argument("file", metavar="FILE", help="evidence: quote, report or envelope")
    verify.add_argument("--type", default="auto", choices=TEE_TYPE_CHOICES,
                        help="evidence format (default: detect from its header)")
    verify.add_argument("--certs", metavar="FILE", nargs="+", action="extend", default=[],
                        help="VCEK or VLEK certificate (DER or PEM) for SEV-SNP reports")
    verify.add_argument("--collateral", metavar="DIR",
                        help="folder of Intel collateral (TCB info, QE identity, CRLs)")
    verify.add_argument("--collateral-chain", metavar="FILE",
                        help="TCB signing chain (PEM) for a collateral folder without one")
    verify.add_argument("--pcs-url", action="append", default=[], metavar="URL",
                        help="fetch Intel collateral from this PCS v4-compatible service "
                             "(PCCS, THIM, Intel PCS); repeat to try several in order")
    verify.add_argument("--kds-url", action="append", default=[], metavar="URL",
                        help="fetch the VCEK if missing, and AMD's CRL, from this "
                             "KDS-compatible service; repeatable")
    verify.add_argument("--collateral-cache", metavar="DIR",
                        help="collateral cache (default $WORKBENCH_HOME/kbs/collateral, the "
                             "broker's); primed with `workbench collateral fetch|import`")
    verify.add_argument("--now", metavar="ISO",
                        help="evaluate at this time (ISO 8601; UTC if no offset)")
    verify.add_argument("--policy", metavar="P", help="appraisal policy (JSON file)")
    verify.add_argument("--report-data", metavar="HEX",
                        help="expected report data (64 bytes hex): checks the session binding")
    verify.add_argument("--nonce", metavar="HEX",
                        help="Azure vTPM evidence: the TPM quote's extraData must be this "
                             "nonce (1 to 64 bytes hex)")
    verify.add_argument("--platform-key", metavar="PEM", action="append", default=[],
                        help="trust this simulated-TEE platform key (default: the local one)")
    verify.add_argument("--json", action="store_true", help="print one JSON document")
    verify.set_defaults(func=_verify_guarded)

    measure = subparsers.add_parser(
        "measure", help="print this install's reference values (simulated TEE measurement)")
    measure.add_argument("--json", action="store_true", help="print JSON")
    measure.add_argument("--manifest", action="store_true",
                         help="also list every measured file and its SHA-256")
    measure.set_defaults(func=_measure)

    policy = subparsers.add_parser("policy", help="appraisal policies")
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND")
    policy_sub.required = True
    init = policy_sub.add_parser(
        "init", help="write a policy that accepts exactly this install's measurement")
    init.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    init.add_argument("--allow-simulation", action="store_true",
                      help="accept simulated evidence (development machines only)")
    init.add_argument("--sealed", action="store_true",
                      help="release only to kernels locked to the analyst's sealed session "
                           "(sealed_session: required; docs/sealed-sessions.md)")
    init.add_argument("--id", help="policy id (default: from the measurement)")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    init.add_argument("--from-evidence", metavar="EVIDENCE",
                      help="pin the reference values of this captured, verified evidence "
                           "(e.g. Azure vTPM evidence: measurement, TCB, PCRs, "
                           "vm-configuration) instead of this install's")
    init.add_argument("--certs", metavar="FILE", nargs="+", action="extend", default=[],
                      help="with --from-evidence: VCEK/VLEK for a bare SEV-SNP report")
    init.add_argument("--pcrs", metavar="LIST",
                      help="with --from-evidence: PCRs to pin, e.g. 0,1,2,3,4,5,6,7,11 "
                           "(default 0-7)")
    init.add_argument("--now", metavar="ISO",
                      help="with --from-evidence: verify at this time (default: now)")
    init.set_defaults(func=_policy_init)

    cce = policy_sub.add_parser(
        "cce-hash", help="SEV-SNP HOST_DATA of an ACI container group: SHA-256 of its CCE "
                         "policy",
        description="Print SHA-256 of a confidential computing enforcement policy (base64 as "
                    "the ARM template's ccePolicy carries it, plain Rego text, or an ARM "
                    "template), the value to pin as reference_values.snp.host_data.")
    cce.add_argument("file", metavar="FILE", help="CCE policy (base64 or Rego) or ARM template")
    cce.add_argument("--format", default="auto", choices=("auto", "base64", "text", "arm"),
                     help="how FILE holds the policy (default: detect)")
    cce.add_argument("--json", action="store_true", help="print one JSON document")
    cce.set_defaults(func=_cce_hash)
