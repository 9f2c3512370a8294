"""`workbench kbs resource add PATH --keyring K`: the key goes from the keyring to the broker
in memory (no key file), and `kbs resource delete` takes back one never released."""

from __future__ import annotations

import os

from publish_helpers import one_line_error

from workbench.sealing.keyring import Keyring


def test_the_broker_gets_the_keyrings_key(owner):
    resource = f"kr-{os.urandom(3).hex()}/table-key/phi"
    ring = Keyring.create(owner.tmp / "owner.keyring")
    ring.ensure_aes256(resource)
    ring.save()
    before = set(p.name for p in owner.tmp.iterdir())
    added = owner.run("kbs", "resource", "add", resource, "--keyring", str(ring.path),
                      "--policy", str(owner.policy_file()))
    assert added.returncode == 0, added.stderr
    fingerprint = ring.entries()[0].fingerprint
    assert added.stdout.startswith(f"added {resource}  active  v1  32 bytes  policy "
                                   f"{owner.site.policy['id']}")
    assert added.stdout.strip().endswith(f"key sha256:{fingerprint}")
    assert owner.broker_state(resource.split("/")[0]) == {resource: (1, fingerprint, "active")}
    # Nothing but the policy file was written on the owner's side.
    assert set(p.name for p in owner.tmp.iterdir()) - before == \
        {p.name for p in owner.tmp.glob("policy-*.json")}
    deleted = owner.run("kbs", "resource", "delete", resource)
    assert deleted.stdout.strip() == f"deleted {resource} (it was never released)"
    assert owner.broker_state(resource.split("/")[0]) == {}


def test_a_key_the_keyring_lacks_is_refused(owner):
    ring = Keyring.create(owner.tmp / "empty.keyring")
    message = one_line_error(owner.run("kbs", "resource", "add", "kr-none/table-key/phi",
                                       "--keyring", str(ring.path), "--policy",
                                       str(owner.policy_file())))
    assert message == (f"workbench: error: key 'kr-none/table-key/phi' is not available: not "
                       f"in keyring {ring.path}")
    assert owner.broker_state("kr-none") == {}


def test_file_and_keyring_are_one_or_the_other(owner):
    both = owner.run("kbs", "resource", "add", "kr-x/table-key/phi", "--keyring", "k",
                     "--file", "f", "--policy", "p")
    assert both.returncode == 2
    assert "argument --file: not allowed with argument --keyring" in both.stderr
    neither = owner.run("kbs", "resource", "add", "kr-x/table-key/phi", "--policy", "p")
    assert neither.returncode == 2
    assert "one of the arguments --file --keyring is required" in neither.stderr


def test_deleting_a_released_key_is_refused_on_one_line(owner, site):
    # The demo model's key, released here to a simulated TEE the broker trusts, can no
    # longer be deleted (only revoked).
    from workbench.attestation.tee.simulated import SimulatedProvider
    from workbench.brokerclient import BrokerSession

    site.repin()
    resource = "risk-model/file-keyset/main"
    with BrokerSession(site.broker_url, provider=SimulatedProvider(home=site.home)) as session:
        session.attest([resource])
        session.get_resource(resource)
    message = one_line_error(owner.run("kbs", "resource", "delete", resource))
    assert message.startswith(f"workbench: error: key broker: resource {resource} was "
                              "released (audit record ")
    assert owner.broker_state("risk-model")[resource][2] == "active"
