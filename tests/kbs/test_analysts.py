"""Analysts the data owner registered (issue 13, items 1-4), against a real broker process:
a session certificate by a registered analyst's key is what a restricted resource needs,
checked at attest and at every release, and an approval counts only as that session's
signature. Every refusal names its rule."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kbs_helpers import sim_policy, unique

from workbench.brokerclient import AnalystApproval, BrokerError, BrokerSession
from workbench.protocol.claims import ANALYST_CLAIM
from workbench.sealed.certificate import (
    approval_message,
    certify,
    fingerprint,
    jwk_of,
    sign,
    thumbprint,
    token_hash,
)
from workbench.sealed.channel import public_point
from workbench.sealed.keys import sealed_fingerprint


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _register(broker, name: str, key: ec.EllipticCurvePrivateKey,
              groups: list[str] | None = None) -> dict[str, Any]:
    with broker.admin() as admin:
        response = admin.post("/analysts", json={"name": name,
                                                 "public_key": jwk_of(key.public_key()),
                                                 "groups": groups})
    assert response.status_code == 201, response.text
    return response.json()


def _revoke(broker, name: str) -> None:
    with broker.admin() as admin:
        assert admin.post(f"/analysts/{name}/revoke").status_code == 200


class Frontend:
    """What a sealed frontend holds: a session key, a signing key, maybe a certificate."""

    def __init__(self, analyst: ec.EllipticCurvePrivateKey | None) -> None:
        self.analyst = analyst
        self.session, self.signing = _key(), _key()

    def open(self, broker, provider, *, kernel_jwk: dict | None = None,
             certificate: dict | None = None) -> BrokerSession:
        """A broker session of a kernel locked to this frontend (certified if it can)."""
        session = BrokerSession(broker.url, provider=provider,
                                session_key=public_point(self.session.public_key()))
        if certificate is None and self.analyst is not None:
            certificate = certify(self.analyst, self.session.public_key(),
                                  self.signing.public_key(),
                                  kernel_jwk or session.tee_pubkey).to_json()
        session.session_certificate = certificate
        return session

    def approval(self, session: BrokerSession, resource: str, *,
                 signer: ec.EllipticCurvePrivateKey | None = None,
                 signed_resource: str | None = None) -> AnalystApproval:
        request = str(uuid.uuid4())
        message = approval_message(request, signed_resource or resource,
                                   thumbprint(session.tee_pubkey), token_hash(session.token))
        return AnalystApproval(
            "sealed", sealed_fingerprint(public_point(self.session.public_key()),
                                         session.tee_pubkey),
            sign(signer or self.signing, message), request)


def _restricted(broker, provider, **policy: Any) -> str:
    path = unique("for-analysts")
    broker.add_resource(path, os.urandom(32),
                        sim_policy(provider, sealed_session="required", **policy))
    return path


def _refusal(session: BrokerSession, path: str, approval: AnalystApproval | None
             ) -> BrokerError:
    with pytest.raises(BrokerError) as refused:
        session.get_resource(path, analyst=approval)
    assert refused.value.kind == "PolicyDeny", refused.value
    return refused.value


def test_an_operator_made_session_gets_nothing_restricted_to_alice(broker, provider) -> None:
    alice = _key()
    _register(broker, f"alice-{uuid.uuid4().hex[:6]}", alice)
    name = _register(broker, f"alice2-{uuid.uuid4().hex[:6]}", _key())["name"]
    path = _restricted(broker, provider, analysts=[name])
    # The operator's own session key, not certified by anyone...
    operator = Frontend(None)
    with operator.open(broker, provider) as session:
        session.attest([path])
        assert ANALYST_CLAIM not in session.verified_claims()
        refused = _refusal(session, path, AnalystApproval(
            "sealed", sealed_fingerprint(public_point(operator.session.public_key()),
                                         session.tee_pubkey)))
    assert [r["name"] for r in refused.failed_rules] == ["analyst"]
    assert "the sealed session is not certified by an analyst's key" in str(refused)
    # ...nor certified by a key of its own making.
    mallory = Frontend(_key())
    with mallory.open(broker, provider) as session:
        session.attest([path])
        claim = session.verified_claims()[ANALYST_CLAIM]
        assert claim == {"fingerprint": fingerprint(jwk_of(mallory.analyst.public_key())),
                         "standing": "unknown", "name": None}
        refused = _refusal(session, path, mallory.approval(session, path))
    assert "unknown analyst: key SHA256:" in str(refused) and "is not registered" \
        in str(refused)


def test_alice_gets_hers_until_she_is_revoked(broker, provider) -> None:
    name = f"alice-{uuid.uuid4().hex[:6]}"
    alice = Frontend(_key())
    _register(broker, name, alice.analyst, ["oncology"])
    by_name = _restricted(broker, provider, analysts=[name])
    by_group = _restricted(broker, provider, analyst_groups=["oncology"])
    elsewhere = _restricted(broker, provider, analysts=["bob"], analyst_groups=["cardiology"])
    with alice.open(broker, provider) as session:
        session.attest([by_name, by_group, elsewhere])
        claim = session.verified_claims()[ANALYST_CLAIM]
        assert claim["name"] == name and claim["standing"] == "registered"
        assert len(session.get_resource(by_name, analyst=alice.approval(session, by_name))) \
            == 32
        refused = _refusal(session, elsewhere, alice.approval(session, elsewhere))
        assert f"analyst {name} (groups oncology) is not listed" in str(refused)
        _revoke(broker, name)
        refused = _refusal(session, by_group, alice.approval(session, by_group))
    assert f"analyst {name} was revoked at" in str(refused)
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": "release", "limit": 1000}).json()
    [release] = [r["payload"] for r in records if r["payload"]["resource"] == by_name]
    approval = release["analyst_approval"]
    assert approval["mode"] == "sealed" and approval["signed"] is True
    assert approval["analyst"] == name
    assert approval["analyst_key"] == fingerprint(jwk_of(alice.analyst.public_key()))
    assert "by" not in approval


def test_a_certificate_carried_to_another_kernel_is_refused(broker, provider) -> None:
    name = f"alice-{uuid.uuid4().hex[:6]}"
    alice = Frontend(_key())
    _register(broker, name, alice.analyst)
    path = _restricted(broker, provider, analysts=[name])
    with alice.open(broker, provider) as first:
        certificate = first.session_certificate
        first.attest([path])
    # The operator starts another kernel and presents alice's certificate (and her public
    # session key) for it: the certificate names the first kernel.
    replay = alice.open(broker, provider, certificate=certificate)
    with replay:
        replay.attest([path])
        assert replay.verified_claims()[ANALYST_CLAIM]["standing"] == "other-kernel"
        refused = _refusal(replay, path, alice.approval(replay, path))
    assert "the session certificate is bound to another kernel" in str(refused)


def test_a_certificate_that_does_not_verify_is_refused(broker, provider) -> None:
    name = f"alice-{uuid.uuid4().hex[:6]}"
    alice = Frontend(_key())
    _register(broker, name, alice.analyst)
    path = _restricted(broker, provider, analysts=[name])
    probe = alice.open(broker, provider)
    # Alice's key named, but signed by someone else: the certificate does not verify.
    forged = certify(_key(), alice.session.public_key(), alice.signing.public_key(),
                     probe.tee_pubkey).to_json()
    forged["analyst_key"] = jwk_of(alice.analyst.public_key())
    with alice.open(broker, provider, certificate=forged) as session:
        session.attest([path])
        assert session.verified_claims()[ANALYST_CLAIM]["standing"] == "invalid"
        refused = _refusal(session, path, alice.approval(session, path))
    probe.close()
    assert [r["name"] for r in refused.failed_rules] == ["analyst"]
    assert "the session certificate's signature does not verify under the analyst key it " \
           "names" in str(refused)


@pytest.mark.parametrize("forgery", ["unsigned", "other-key", "other-resource"])
def test_a_forged_approval_is_refused(broker, provider, forgery: str) -> None:
    name = f"alice-{uuid.uuid4().hex[:6]}"
    alice = Frontend(_key())
    _register(broker, name, alice.analyst)
    path = _restricted(broker, provider, analysts=[name])
    with alice.open(broker, provider) as session:
        session.attest([path])
        genuine = alice.approval(session, path)
        approval = {
            "unsigned": AnalystApproval("sealed", genuine.by),
            "other-key": alice.approval(session, path, signer=_key()),
            "other-resource": alice.approval(session, path, signed_resource="x/y/z"),
        }[forgery]
        refused = _refusal(session, path, approval)
    assert [r["name"] for r in refused.failed_rules] == ["signed-approval"]
    expected = "is not signed" if forgery == "unsigned" else "signature does not verify"
    assert expected in str(refused)


def test_analysts_are_managed_from_the_command_line(broker, tmp_path, workbench_cli: str
                                                    ) -> None:
    from kbs_helpers import ADMIN_TOKEN

    token = tmp_path / "admin-token"
    token.write_text(ADMIN_TOKEN)
    key = tmp_path / "analyst.pem"
    made = subprocess.run([workbench_cli, "analyst", "keygen", "--out", str(key)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    public = tmp_path / "analyst.pem.pub.jwk"
    printed = made.stdout.split("fingerprint ")[1].split()[0]
    assert printed == fingerprint(json.loads(public.read_text()))
    again = subprocess.run([workbench_cli, "analyst", "keygen", "--out", str(key)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "never overwritten" in again.stderr

    name = f"carol-{uuid.uuid4().hex[:6]}"
    admin = ["--url", broker.url, "--admin-token-file", str(token)]

    def kbs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([workbench_cli, "kbs", "analyst", *args, *admin],
                              capture_output=True, text=True, timeout=60)

    added = kbs("add", name, "--public-key", str(public), "--group", "oncology")
    assert added.returncode == 0, added.stderr
    assert f"registered analyst {name} {printed} groups oncology" in added.stdout
    assert kbs("add", name, "--public-key", str(public)).returncode == 1
    listed = kbs("list")
    assert name in listed.stdout and printed in listed.stdout
    assert kbs("revoke", name).returncode == 0
    assert "REVOKED" in kbs("list").stdout
    with broker.admin() as client:
        records = client.get("/audit", params={"kind": "admin", "limit": 1000}).json()
    changes = [(r["payload"]["action"], r["payload"]["fingerprint"]) for r in records
               if r["payload"].get("analyst") == name]
    assert changes == [("analyst-add", printed), ("analyst-revoke", printed)]
    bad = tmp_path / "bad.jwk"
    bad.write_text("not a key")
    refused = kbs("add", "dave", "--public-key", str(bad))
    assert refused.returncode == 2 and "neither a JWK nor a PEM" in refused.stderr
