"""An audit log that cannot be rewritten quietly (issue: anchoring the audit log).

The attacker here can write the broker's database and nothing else: they edit records,
delete them, cut the tail and rewrite the head row, re-sign the whole chain with a key of
their own inserted into ``broker_keys``, and restart the real broker on the forged store so
it appends on top. The data owner holds what the broker published outside that database:
its key file (or fingerprint) and signed checkpoints. ``workbench audit verify`` runs as
the CLI and must name the record or the checkpoint each forgery contradicts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from kbs_helpers import (
    ADMIN_TOKEN,
    Broker,
    make_broker,
    running_broker,
    session_for,
    sim_policy,
    unique,
)

from workbench.kbs import audit, checkpoint

KEY_FILE = "broker-keys.jwks"
# The installed console script (the workbench_cli fixture is function-scoped).
WORKBENCH = str(Path(sys.executable).parent / "workbench")


# -- the broker, the data owner's copies, the attacker's tools ----------------------------

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with running_broker(tmp_path_factory.mktemp("anchor")) as running:
        yield running


def busy(broker: Broker, provider, rounds: int = 2) -> None:
    """Admin changes, releases and refusals: a log with every kind of record in it."""
    for index in range(rounds):
        path = unique(f"anchor{index}")
        broker.add_resource(path, os.urandom(32), sim_policy(provider))
        with session_for(broker, provider) as session:
            session.attest([path])
            session.get_resource(path)
            with pytest.raises(Exception, match="not found"):
                session.get_resource("missing/table-key/phi")


def cli(workbench_cli: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([workbench_cli, *args], capture_output=True, text=True, timeout=120,
                          env=env)


def take_checkpoint(workbench_cli: str, broker: Broker, out: Path
                    ) -> subprocess.CompletedProcess:
    return cli(workbench_cli, "audit", "checkpoint", "--url", broker.url, "--out", str(out),
               env={**os.environ, "WORKBENCH_KBS_ADMIN_TOKEN": ADMIN_TOKEN})


@pytest.fixture(scope="module")
def owner(broker, provider, tmp_path_factory) -> dict[str, Path]:
    """What the data owner keeps away from the broker's host: a copy of its key file and
    a checkpoint taken after some activity."""
    busy(broker, provider)
    kept = tmp_path_factory.mktemp("owner")
    shutil.copy(broker.home / "kbs" / KEY_FILE, kept / KEY_FILE)
    taken = take_checkpoint(WORKBENCH, broker, kept / "checkpoint.json")
    assert taken.returncode == 0, taken.stderr
    return {"keys": kept / KEY_FILE, "checkpoint": kept / "checkpoint.json"}


def backup(db: Path, copy: Path) -> Path:
    with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    return copy


@pytest.fixture
def store_copy(broker, owner, tmp_path) -> Path:
    return backup(broker.db, tmp_path / "copy.db")


def verify(workbench_cli: str, db: Path, *options: str) -> subprocess.CompletedProcess:
    return cli(workbench_cli, "audit", "verify", "--db", f"sqlite:///{db}", *options)


def execute(db: Path, *statements: tuple[str, tuple]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def last_seq(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]


def cut_tail(db: Path, keep: int, *, rewrite_head: bool) -> None:
    """Delete every record after ``keep``; optionally point the head at the new end."""
    statements = [("DELETE FROM audit_log WHERE seq > ?", (keep,))]
    if rewrite_head:
        statements.append(("UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM "
                           "audit_log WHERE seq = ?) WHERE id = 1", (keep, keep)))
    execute(db, *statements)


def resign(db: Path, *, drop_kind: str = "release") -> str:
    """The whole forgery: drop every ``drop_kind`` record, renumber, re-hash and re-sign
    the rest with a new key, insert that key into broker_keys and rewrite the head, as
    someone with write access to the database (and no KEK) would. Returns the new kid."""
    jwk = JWK.generate(kty="EC", crv="P-256")
    private = jwk.get_op_key("sign")
    kid = jwk.thumbprint()
    public = {**json.loads(jwk.export_public()), "kid": kid, "alg": "ES256", "use": "sig"}
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT time, kind, payload FROM audit_log WHERE kind != ? "
                        "ORDER BY seq", (drop_kind,)).fetchall()
    prev = audit.GENESIS_HASH
    forged = []
    for seq, (time, kind, payload) in enumerate(rows, start=1):
        msg = audit.message(seq, time, kind, prev, payload)
        digest = hashlib.sha256(msg).hexdigest()
        signature = base64.b64encode(private.sign(msg, ec.ECDSA(hashes.SHA256()))).decode()
        forged.append((seq, time, kind, payload, prev, digest, kid, signature))
        prev = digest
    with conn:
        conn.execute("DELETE FROM audit_log")
        conn.executemany("INSERT INTO audit_log (seq, time, kind, payload, prev_hash, hash, "
                         "kid, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", forged)
        conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                     (len(forged), prev))
        conn.execute("INSERT INTO broker_keys (kid, public_jwk, private_nonce, "
                     "private_sealed, created_at, active) VALUES (?, ?, ?, ?, ?, ?)",
                     (kid, json.dumps(public), b"\0" * 12, b"not sealed under the KEK",
                      datetime.now(UTC).isoformat(), False))
    conn.close()
    return kid


def forged_home(broker: Broker, base: Path) -> Broker:
    """A broker home like ``broker``'s (KEK, admin token, platform key) with a store copy,
    for the real broker to be restarted on once the attacker is done with the copy."""
    target = make_broker(base)
    shutil.copytree(broker.home, target.home, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("kbs.db*", KEY_FILE))
    backup(broker.db, target.db)
    return target


def fingerprint_of(key_file: Path) -> str:
    [key] = json.loads(key_file.read_text())["keys"]
    return "SHA256:" + JWK(**key).thumbprint()


# -- what the broker publishes outside its database ----------------------------------------

def test_the_broker_writes_its_key_file_at_start(broker, owner):
    import httpx

    key_file = broker.home / "kbs" / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o644
    published = httpx.get(f"{broker.url}/.well-known/jwks.json").json()
    assert json.loads(key_file.read_text()) == published


def test_an_intact_log_verifies_against_every_external_key_source(broker, owner,
                                                                  workbench_cli):
    for options in ([f"--keys={owner['keys']}"],
                    [f"--jwks={broker.url}/.well-known/jwks.json"],
                    [f"--fingerprint={fingerprint_of(owner['keys'])}"],
                    []):  # the broker's key file beside the store
        result = verify(workbench_cli, broker.db, *options,
                        f"--checkpoint={owner['checkpoint']}")
        assert result.returncode == 0, (options, result.stderr)
        assert "audit log intact" in result.stdout
        assert "against 1 broker key(s); 1 checkpoint(s) agree" in result.stdout


def test_a_checkpoint_file_is_never_replaced(broker, owner, workbench_cli):
    before = owner["checkpoint"].read_bytes()
    result = take_checkpoint(workbench_cli, broker, owner["checkpoint"])
    assert result.returncode == 2
    assert "already exists: a checkpoint is evidence" in result.stderr
    assert owner["checkpoint"].read_bytes() == before


# -- the attacks ---------------------------------------------------------------------------

def test_an_edited_record_is_named(owner, store_copy, workbench_cli):
    with sqlite3.connect(store_copy) as conn:
        (seq,) = conn.execute("SELECT min(seq) FROM audit_log WHERE kind = 'release'"
                              ).fetchone()
    execute(store_copy, ("UPDATE audit_log SET payload = replace(payload, 'anchor0', "
                         "'elsewhere') WHERE seq = ?", (seq,)))
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}",
                    f"--checkpoint={owner['checkpoint']}")
    assert result.returncode == 1
    assert f"audit log broken at record {seq}: its hash does not match its content" \
        in result.stderr


def test_a_deleted_middle_record_is_named(owner, store_copy, workbench_cli):
    execute(store_copy, ("DELETE FROM audit_log WHERE seq = 5", ()))
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}",
                    f"--checkpoint={owner['checkpoint']}")
    assert result.returncode == 1
    assert "audit log broken at record 5: record 5 is missing (sequence jumps from 4 to 6)" \
        in result.stderr


def test_a_cut_tail_is_named_by_the_head(owner, store_copy, workbench_cli):
    end = last_seq(store_copy)
    cut_tail(store_copy, end - 3, rewrite_head=False)
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}")
    assert result.returncode == 1
    assert (f"audit log broken at record {end - 2}: the head names record {end} but the "
            f"log ends at {end - 3}") in result.stderr


def test_a_cut_tail_with_the_head_rewritten_is_named_by_the_checkpoint(owner, store_copy,
                                                                        workbench_cli):
    point = checkpoint.read(owner["checkpoint"])
    cut_tail(store_copy, point.seq - 3, rewrite_head=True)
    # Without an anchor the shortened log is a valid log: this is what checkpoints are for.
    assert verify(workbench_cli, store_copy, f"--keys={owner['keys']}").returncode == 0
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}",
                    f"--checkpoint={owner['checkpoint']}")
    assert result.returncode == 1
    assert (f"audit log broken at record {point.seq - 2}: the log ends at {point.seq - 3} "
            f"but checkpoint {owner['checkpoint']} (seq {point.seq}, time {point.time}) "
            f"says record {point.seq} existed: records were cut from the end") \
        in result.stderr


def test_a_full_resign_with_an_inserted_key_is_named(owner, store_copy, workbench_cli):
    kid = resign(store_copy)
    with sqlite3.connect(store_copy) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log WHERE kind = 'release'"
                            ).fetchone() == (0,)
    named = (f"audit log broken at record 1: it is signed by key {kid}, which is not one of "
             "the broker's keys")
    pin = fingerprint_of(owner["keys"])
    for options in ([f"--keys={owner['keys']}"], [f"--fingerprint={pin}"],
                    [f"--keys={owner['keys']}", f"--checkpoint={owner['checkpoint']}"]):
        result = verify(workbench_cli, store_copy, *options)
        assert result.returncode == 1, options
        assert named in result.stderr, (options, result.stderr)


def test_a_resign_then_the_real_broker_appending_is_named(broker, owner, provider,
                                                           workbench_cli, tmp_path):
    victim = forged_home(broker, tmp_path)
    kid = resign(victim.db)
    victim.start()
    try:
        busy(victim, provider, rounds=1)  # the real broker appends on top of the forgery
        with victim.admin() as admin:
            served = admin.get("/audit/verify").json()
    finally:
        victim.stop()
    assert "the last audit record is signed by key " + kid in victim.log.read_text()
    assert "not this broker's key" in victim.log.read_text()
    with sqlite3.connect(victim.db) as conn:
        kids = {k for (k,) in conn.execute("SELECT DISTINCT kid FROM audit_log")}
    assert kids == {kid, json.loads(owner["keys"].read_text())["keys"][0]["kid"]}
    named = f"audit log broken at record 1: it is signed by key {kid}"
    # The broker's own admin route, the data owner's copy, and the key file the restarted
    # broker wrote beside the forged store (the inserted key is not in it).
    assert served["ok"] is False and served["bad_seq"] == 1 and named in served["detail"]
    for options in ([f"--keys={owner['keys']}", f"--checkpoint={owner['checkpoint']}"], []):
        result = verify(workbench_cli, victim.db, *options)
        assert result.returncode == 1, options
        assert named in result.stderr, (options, result.stderr)
    assert json.loads((victim.home / "kbs" / KEY_FILE).read_text()) \
        == json.loads(owner["keys"].read_text())


def test_a_cut_tail_regrown_by_the_real_broker_is_named_by_the_checkpoint(
        broker, owner, provider, workbench_cli, tmp_path):
    """Cut back to before the checkpoint, head rewritten, and the real broker restarted:
    it appends genuine records past the checkpoint's seq. Every signature is the broker's;
    only the checkpoint knows record S used to be something else."""
    point = checkpoint.read(owner["checkpoint"])
    victim = forged_home(broker, tmp_path)
    cut_tail(victim.db, point.seq - 2, rewrite_head=True)
    victim.start()
    try:
        busy(victim, provider, rounds=1)
    finally:
        victim.stop()
    assert last_seq(victim.db) > point.seq
    assert verify(workbench_cli, victim.db, f"--keys={owner['keys']}").returncode == 0
    result = verify(workbench_cli, victim.db, f"--keys={owner['keys']}",
                    f"--checkpoint={owner['checkpoint']}")
    assert result.returncode == 1
    assert (f"audit log broken at record {point.seq}: it was rewritten: checkpoint "
            f"{owner['checkpoint']} (seq {point.seq}, time {point.time}) says its hash is "
            f"{point.hash}") in result.stderr


# -- refusals: no trust in the database's own keys, no unsigned anchors ---------------------

def test_verify_without_a_key_source_is_refused(store_copy, workbench_cli):
    result = verify(workbench_cli, store_copy)
    assert result.returncode == 2
    assert "no broker key to verify the audit log against: give --keys FILE" in result.stderr
    assert "keys found in the database being checked are never trusted on their own" \
        in result.stderr
    assert f"no key file at {store_copy.parent / KEY_FILE}" in result.stderr


def test_a_pin_naming_no_key_is_refused(store_copy, workbench_cli):
    stranger = "SHA256:" + JWK.generate(kty="EC", crv="P-256").thumbprint()
    result = verify(workbench_cli, store_copy, f"--fingerprint={stranger}")
    assert result.returncode == 2
    assert f"{stranger}: no key with this fingerprint" in result.stderr


def test_a_malformed_fingerprint_is_refused(store_copy, workbench_cli):
    result = verify(workbench_cli, store_copy, "--fingerprint=SHA1:abc")
    assert result.returncode == 2
    assert "SHA1:abc: not a broker key fingerprint" in result.stderr


def test_a_private_key_file_is_refused(store_copy, workbench_cli, tmp_path):
    private = tmp_path / "private.jwk"
    private.write_text(JWK.generate(kty="EC", crv="P-256").export_private())
    result = verify(workbench_cli, store_copy, f"--keys={private}")
    assert result.returncode == 2
    assert "holds a private key; give the public key only" in result.stderr


def test_an_edited_checkpoint_is_refused(owner, store_copy, workbench_cli, tmp_path):
    document = json.loads(owner["checkpoint"].read_text())
    document["seq"] -= 1
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}",
                    f"--checkpoint={edited}")
    assert result.returncode == 2
    assert f"{edited}: checkpoint signature does not verify under the broker's key" \
        in result.stderr


def test_a_checkpoint_signed_by_another_key_is_refused(owner, store_copy, workbench_cli,
                                                       tmp_path):
    from workbench.kbs.broker_key import _from_jwk

    stranger = _from_jwk(JWK.generate(kty="EC", crv="P-256"))
    point = checkpoint.read(owner["checkpoint"])
    forged = checkpoint.issue(stranger, point.broker, point.seq + 100, "a" * 64,
                              datetime.now(UTC))
    path = tmp_path / "forged.json"
    checkpoint.save(forged, path)
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}",
                    f"--checkpoint={path}")
    assert result.returncode == 2
    assert (f"{path}: checkpoint is signed by key {stranger.kid}, which is not one of the "
            "broker's keys") in result.stderr


def test_a_malformed_checkpoint_is_refused(owner, store_copy, workbench_cli, tmp_path):
    path = tmp_path / "not-a-checkpoint.json"
    path.write_text(json.dumps({"seq": 3, "hash": "0" * 64}))
    result = verify(workbench_cli, store_copy, f"--keys={owner['keys']}",
                    f"--checkpoint={path}")
    assert result.returncode == 2
    assert f"{path}: not a checkpoint: missing v, broker, time, kid, signature" \
        in result.stderr


def _rsa_jwk() -> str:
    return JWK.generate(kty="RSA", size=2048).export_public()


def _checkpoint_with(owner: dict[str, Path], **changes: object) -> str:
    return json.dumps({**json.loads(owner["checkpoint"].read_text()), **changes})


# (option, what the file holds or None for no file, the reason expected after "<file>: ")
INPUT_REFUSALS = {
    "unreadable key file": ("--keys", None, "cannot read broker keys"),
    "key file not JSON": ("--keys", lambda _o: "{nope", "not a JWK or JWK set"),
    "key file of an RSA key": ("--keys", lambda _o: _rsa_jwk(), "not an EC P-256 key"),
    "oversized key file": ("--keys", lambda _o: " " * (300 * 1024), "key file is larger"),
    "unreadable checkpoint": ("--checkpoint", None, "cannot read checkpoint"),
    "checkpoint not JSON": ("--checkpoint", lambda _o: "[1,", "checkpoint is not valid JSON"),
    "checkpoint not an object": ("--checkpoint", lambda _o: "[]",
                                 "a checkpoint must be a JSON object"),
    "checkpoint with a string seq": ("--checkpoint", lambda o: _checkpoint_with(o, seq="7"),
                                     "checkpoint field 'seq' must be a int"),
    "checkpoint of another version": ("--checkpoint", lambda o: _checkpoint_with(o, v=2),
                                      "checkpoint version 2 is not 1"),
    "checkpoint with a short hash": ("--checkpoint",
                                     lambda o: _checkpoint_with(o, hash="ab"),
                                     "checkpoint seq must be positive and hash 64"),
    "checkpoint with an extra field": ("--checkpoint",
                                       lambda o: _checkpoint_with(o, note="x"),
                                       "not a checkpoint: unknown note"),
    "oversized checkpoint": ("--checkpoint", lambda _o: " " * (17 * 1024),
                             "checkpoint is larger than"),
}


@pytest.mark.parametrize("case", INPUT_REFUSALS)
def test_bad_key_and_checkpoint_files_are_refused(case, owner, store_copy, workbench_cli,
                                                  tmp_path):
    option, content, reason = INPUT_REFUSALS[case]
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content(owner))
    extra = [] if option == "--keys" else [f"--keys={owner['keys']}"]
    result = verify(workbench_cli, store_copy, f"{option}={path}", *extra)
    assert result.returncode == 2, result.stdout
    assert f"{path}: {reason}" in result.stderr


def test_an_unreachable_jwks_url_is_refused(store_copy, workbench_cli):
    from kbs_helpers import free_port

    url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    result = verify(workbench_cli, store_copy, f"--jwks={url}")
    assert result.returncode == 2
    assert f"cannot reach the key broker at {url}" in result.stderr


def test_a_checkpoint_into_a_missing_directory_is_refused(broker, workbench_cli, tmp_path):
    result = take_checkpoint(workbench_cli, broker, tmp_path / "absent" / "cp.json")
    assert result.returncode == 2
    assert f"{tmp_path / 'absent'}: output directory does not exist" in result.stderr
