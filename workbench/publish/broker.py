"""The broker's side of a publish: what each resource needs, decided before anything is
written, then done with a way back for each step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.errors import InputError, WorkbenchError
from workbench.kbs.adminclient import AdminClient
from workbench.publish.undo import Undo
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import fingerprint

ADDED, UNCHANGED, ROTATED = "added", "unchanged", "rotated"


def policy_digest(policy: Mapping[str, Any]) -> str:
    """SHA-256 of the policy as the broker stores it (canonical JSON), to compare with its
    ``policy_sha256``."""
    return hashlib.sha256(json.dumps(policy, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


@dataclass(frozen=True)
class Release:
    """How the broker should release a resource it does not hold yet."""

    policy: dict[str, Any] | None = None
    require_approval: bool = False
    approval_timeout_s: int | None = None
    users: list[str] | None = None
    groups: list[str] | None = None


def plan(admin: AdminClient, resources: tuple[str, ...], keyring: Keyring, *, rotate: bool,
         release: Release) -> dict[str, str]:
    """resource -> ADDED, UNCHANGED or ROTATED; refuses what publish must not change."""
    steps: dict[str, str] = {}
    for resource in resources:
        info = admin.find_resource(resource)
        if info is None:
            if release.policy is None:
                raise InputError(f"{resource} is not registered with the key broker yet: "
                                 "give its release policy with --policy POLICY.json")
            steps[resource] = ADDED
            continue
        if info["status"] != "active":
            raise WorkbenchError(f"{resource} was revoked in the key broker at {admin.url}; a "
                                 "revoked key does not come back: publish under another name")
        if release.policy is not None and info["policy_sha256"] != policy_digest(release.policy):
            raise WorkbenchError(f"{resource} is registered under another policy "
                                 f"('{info['policy_id']}'); publish does not change policies: "
                                 f"use `workbench kbs policy set {resource}`, or leave out "
                                 "--policy")
        if resource not in keyring:
            raise WorkbenchError(f"the key broker holds {resource}, but keyring {keyring.path} "
                                 "has no key for it: publish with the keyring that sealed it "
                                 "(or, if no kernel ever received it, remove it with "
                                 f"`workbench kbs resource delete {resource}`)")
        if rotate:
            steps[resource] = ROTATED
            continue
        ours = fingerprint(keyring.get_key(resource))
        if info.get("key_fingerprint") != ours:
            raise WorkbenchError(f"the key broker holds another key for {resource} "
                                 f"(sha256:{info.get('key_fingerprint')}) than keyring "
                                 f"{keyring.path} (sha256:{ours}); --rotate replaces both "
                                 "with a new key")
        steps[resource] = UNCHANGED
    return steps


def register(admin: AdminClient, steps: dict[str, str], keyring: Keyring,
             previous: Mapping[str, bytes], release: Release, undo: Undo) -> None:
    """Do ``steps`` with the keyring's keys (in memory only); each has its undo."""
    for resource, action in steps.items():
        if action == ADDED:
            admin.add_resource(resource, keyring.get_key(resource), release.policy or {},
                               require_approval=release.require_approval,
                               approval_timeout_s=release.approval_timeout_s,
                               users=release.users, groups=release.groups)
            undo.push(f"removed {resource} from the key broker",
                      f"remove {resource} from the key broker",
                      lambda r=resource: admin.delete_resource(r))
        elif action == ROTATED:
            admin.rotate(resource, keyring.get_key(resource))
            undo.push(f"put the previous key of {resource} back in the key broker",
                      f"put the previous key of {resource} back in the key broker",
                      lambda r=resource: admin.rotate(r, previous[r]))
