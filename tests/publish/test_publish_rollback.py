"""A publish that fails half-way leaves nothing half-published, in both directions.

Failures are real, made at a precise step through the core's ``on_step`` hook: the broker
refusing a policy, another owner registering the same key or editing the catalog
meanwhile, the file's place taken, a kernel receiving a key before the publish failed.
Broker, data directory and keyring are checked afterwards.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from publish_helpers import PHI, diabetes_visits, one_line_error

from workbench.brokerclient import BrokerSession
from workbench.errors import WorkbenchError
from workbench.kbs.adminclient import AdminClient
from workbench.kernel.catalog import CATALOG_NAME
from workbench.publish import core
from workbench.publish.broker import Release
from workbench.publish.kinds import ASSET_KINDS
from workbench.publish.table import TableAsset
from workbench.sealing.keyring import Keyring

TABLE = ASSET_KINDS["table"]


@pytest.fixture
def name() -> str:
    return f"rb-{os.urandom(3).hex()}"


@pytest.fixture
def admin(site):
    with AdminClient(site.broker_url, site.admin_token) as client:
        yield client


@pytest.fixture
def asset(name):
    return TableAsset(name, _table(diabetes_visits().iloc[:80]), PHI)


def _table(frame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def target(owner, admin, **options) -> core.Target:
    return core.Target(owner.data_dir, owner.keyring, admin, Release(owner.site.policy),
                       **options)


def sabotage(at: str, action):
    """An ``on_step`` that does ``action`` once, right after step ``at``."""
    def on_step(step: str, _detail: str) -> None:
        if step == at:
            action()
    return on_step


def edit_catalog(owner) -> None:
    """Another owner's edit of the catalog, made while this publish is under way."""
    path = owner.data_dir / CATALOG_NAME
    document = json.loads(path.read_text())
    document["datasets"]["cohort"]["description"] += " (edited)"
    path.write_text(json.dumps(document, indent=2))


def test_registration_refused_after_sealing_removes_the_sealed_file(owner, name, tmp_path):
    source = tmp_path / "visits.parquet"
    diabetes_visits().iloc[:80].to_parquet(source)
    bad = owner.policy_file({"id": "typo", "allow_simulaton": True})
    before = owner.snapshot(name)
    message = one_line_error(owner.publish("table", source, name, "--protect", ",".join(PHI),
                                           "--policy", str(bad)))
    assert message.startswith(f"workbench: error: publishing table '{name}' failed: key "
                              "broker: policy: ")
    assert "allow_simulaton" in message
    assert message.endswith("; nothing was published (undone: removed the sealed file, "
                            "restored the keyring)")
    assert owner.snapshot(name) == before
    assert name not in owner.catalog()["datasets"]


def test_a_key_registered_before_a_later_one_is_refused_is_removed(owner, admin, name, asset):
    phi = f"{name}/table-key/phi"
    racer = os.urandom(32)

    def another_owner_registers_phi() -> None:
        admin.add_resource(phi, racer, owner.site.policy, require_approval=False,
                           approval_timeout_s=None)

    before = owner.snapshot(name)
    with pytest.raises(WorkbenchError) as failed:
        core.publish(TABLE, asset, target(owner, admin),
                     on_step=sabotage(core.SEALED, another_owner_registers_phi))
    message = str(failed.value)
    assert f"key broker: resource {phi} already exists" in message
    assert message.endswith(f"nothing was published (undone: removed {name}/table-key/clinical "
                            "from the key broker, removed the sealed file, restored the "
                            "keyring)")
    after = owner.snapshot(name)
    assert after["files"] == before["files"] and after["keyring"] == before["keyring"]
    # Only the other owner's key is left: ours was taken back.
    assert list(after["broker"]) == [phi]


@pytest.mark.parametrize("failure", ["catalog edited meanwhile", "file's place taken"])
def test_a_failure_after_registration_removes_the_keys_from_the_broker(owner, admin, name,
                                                                       asset, failure):
    final = owner.data_dir / f"{name}.sealed.parquet"

    def take_the_place() -> None:
        final.mkdir()
        (final / "something").write_text("not ours")

    keys_removed = (f"removed {name}/table-key/phi from the key broker, removed "
                    f"{name}/table-key/clinical from the key broker")
    step, action, cause, undone = {
        "catalog edited meanwhile": (
            core.PLACED, lambda: edit_catalog(owner),
            "the catalog changed while this edit was being made",
            f"(undone: removed {final}, {keys_removed}, restored the keyring)"),
        "file's place taken": (
            core.REGISTERED, take_the_place, f"{final}: is a directory, not a sealed file",
            f"(undone: {keys_removed}, removed the sealed file, restored the keyring)"),
    }[failure]
    before = owner.snapshot(name)
    try:
        with pytest.raises(WorkbenchError) as failed:
            core.publish(TABLE, asset, target(owner, admin), on_step=sabotage(step, action))
        message = str(failed.value)
        assert message.startswith(f"publishing table '{name}' failed: ")
        assert cause in message
        assert message.endswith(f"nothing was published {undone}")
        after = owner.snapshot(name)
        assert after["broker"] == {} and after["keyring"] == before["keyring"]
        assert {f for f in after["files"] if f != CATALOG_NAME} == \
            {f for f in before["files"] if f != CATALOG_NAME}
        assert name not in owner.catalog()["datasets"]
    finally:
        shutil.rmtree(final, ignore_errors=True)


def test_a_failed_republish_with_rotate_restores_what_was_published(owner, admin, name, asset):
    core.publish(TABLE, asset, target(owner, admin, description="first"))
    before = owner.snapshot(name)
    changed = TableAsset(name, _table(diabetes_visits().iloc[:30]), PHI)
    with pytest.raises(WorkbenchError) as failed:
        core.publish(TABLE, changed, target(owner, admin, rotate=True, description="second"),
                     on_step=sabotage(core.PLACED, lambda: edit_catalog(owner)))
    message = str(failed.value)
    assert f"put the previous key of {name}/table-key/phi back in the key broker" in message
    assert f"put the previous {name}.sealed.parquet back" in message
    after = owner.snapshot(name)
    sealed = f"{name}.sealed.parquet"
    assert after["files"][sealed] == before["files"][sealed]
    assert after["keyring"] == before["keyring"]
    # The broker holds the previous keys again (as two new versions: rotated, then back).
    assert {p: (key, status) for p, (_v, key, status) in after["broker"].items()} == \
        {p: (key, status) for p, (_v, key, status) in before["broker"].items()}
    assert owner.catalog()["datasets"][name]["description"] == "first"
    assert not [f for f in after["files"] if f.startswith(".")]


def test_a_key_a_kernel_received_meanwhile_is_reported_not_hidden(owner, admin, name, asset):
    from workbench.attestation.tee.simulated import SimulatedProvider

    owner.site.repin()
    clinical = f"{name}/table-key/clinical"
    provider = SimulatedProvider(home=owner.site.home)

    def a_kernel_fetches_the_key() -> None:
        with BrokerSession(owner.site.broker_url, provider=provider) as session:
            session.attest([clinical])
            session.get_resource(clinical)

    def steps(step: str, detail: str) -> None:
        sabotage(core.REGISTERED, a_kernel_fetches_the_key)(step, detail)
        sabotage(core.PLACED, lambda: edit_catalog(owner))(step, detail)

    with pytest.raises(WorkbenchError) as failed:
        core.publish(TABLE, asset, target(owner, admin), on_step=steps)
    message = str(failed.value)
    assert (f"ROLLBACK INCOMPLETE: could not remove {clinical} from the key broker (key "
            f"broker: resource {clinical} was released (audit record ") in message
    assert "cannot be deleted, only revoked ('kbs resource revoke')" in message
    assert f"removed {name}/table-key/phi from the key broker" in message
    # What could be undone was: the sealed file and the keyring; the released key stays,
    # for the owner to revoke, as the message says.
    assert list(owner.broker_state(name)) == [clinical]
    assert not (owner.data_dir / f"{name}.sealed.parquet").exists()
    assert clinical not in Keyring.open(owner.keyring)
