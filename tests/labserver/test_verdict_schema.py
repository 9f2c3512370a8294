"""The verdict's JSON, its schema and the lab extension's TypeScript types agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from jwcrypto.jwk import JWK
from labserver_reports import make_report, sim_policy

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.verdict import TransportContext, TrustSettings, Verdict, judge, parse_report
from workbench.verdict.typescript import TS_PATH, generate, load_schema

ROOT = Path(__file__).resolve().parents[2]


def _trust(key: JWK | None, **options) -> TrustSettings:
    keys = [JWK(**key.export_public(as_dict=True))] if key is not None else []
    return TrustSettings(broker_keys=keys, broker_url="http://127.0.0.1:1", key_source="test",
                         key_problem="" if keys else "no broker key", **options)


def test_committed_typescript_is_what_the_schema_generates() -> None:
    committed = (ROOT / TS_PATH).read_text()
    assert committed == generate(), (
        f"{TS_PATH} is out of date with workbench/verdict/verdict.schema.json: run "
        f"`.venv/bin/python -m workbench.verdict.typescript > {TS_PATH}`")


def test_the_typescript_declares_the_verdict_and_every_definition() -> None:
    text = generate()
    schema = load_schema()
    for name in [*schema["$defs"], "Verdict"]:
        assert f"export interface I{name} " in text
    # Members the server always sends are required in TypeScript too.
    assert "  transport: ITransportNote | null;" in text
    assert "  state: 'verified' | 'simulated' | 'unverified' | 'refused';" in text


def _verdicts(fixed_package: Path, provider: SimulatedProvider, broker_key: JWK
              ) -> dict[str, Verdict]:
    past = datetime.now(UTC) - timedelta(hours=1)
    then = SimulatedProvider(package_dir=fixed_package, kernels_dir=fixed_package / "none",
                             clock=lambda: past)
    sound = make_report(provider, broker_key)
    refused = make_report(provider, broker_key,
                          policy=sim_policy(provider, allow_simulation=False))
    expired = make_report(then, broker_key, now=past, lifetime_s=60)
    no_evidence = {**sound.body, "evidence": None}
    other_server_key = TransportContext(b"\x01" * 32, "a test connection")
    return {
        "simulated": judge(parse_report(sound.body), _trust(broker_key)),
        "policy refused": judge(parse_report(refused.body), _trust(broker_key)),
        "expired": judge(parse_report(expired.body), _trust(broker_key)),
        "no evidence": judge(parse_report(no_evidence), _trust(broker_key)),
        "no broker key": judge(parse_report(sound.body), _trust(None)),
        "transport mismatch": judge(parse_report(sound.body),
                                    _trust(broker_key, transport=other_server_key)),
    }


def test_every_kind_of_verdict_is_valid_against_the_schema(
        fixed_package: Path, provider: SimulatedProvider, broker_key: JWK) -> None:
    validator = jsonschema.Draft202012Validator(load_schema())
    verdicts = _verdicts(fixed_package, provider, broker_key)
    states = {name: v.state.value for name, v in verdicts.items()}
    assert states == {"simulated": "simulated", "policy refused": "refused",
                      "expired": "unverified", "no evidence": "unverified",
                      "no broker key": "unverified", "transport mismatch": "refused"}
    for name, verdict in verdicts.items():
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
                  for e in validator.iter_errors(verdict.to_json())]
        assert errors == [], name
    assert verdicts["transport mismatch"].transport is not None


@pytest.mark.parametrize("change", [{"state": "fine"}, {"surprise": 1},
                                    {"checks": [{"name": "x", "ok": "yes", "detail": ""}]}])
def test_the_schema_refuses_what_the_extension_would_misread(
        provider: SimulatedProvider, broker_key: JWK, change: dict) -> None:
    sound = judge(parse_report(make_report(provider, broker_key).body), _trust(broker_key))
    validator = jsonschema.Draft202012Validator(load_schema())
    assert not validator.is_valid({**sound.to_json(), **change})


def test_a_verdict_reads_like_its_json(provider: SimulatedProvider, broker_key: JWK) -> None:
    verdict = judge(parse_report(make_report(provider, broker_key).body), _trust(broker_key))
    assert dict(verdict) == verdict.to_json()
    assert verdict["state"] == verdict.state == "simulated" and verdict.allows_release
    assert verdict.check("policy") is not None and verdict.check("policy").ok
