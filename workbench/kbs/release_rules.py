"""Release rules: what a resource asks of the *requester*, beside the kernel's evidence.

Appraisal policies judge evidence (what runs, where); identity is not evidence, so the
user and group restrictions live here, as release options of the resource, and are judged
by the broker against the identity the hub confirmed (``workbench.kbs.identity``). Every
rule is one row of ``RULES``; a failed rule has the shape of an appraisal rule in
``failed-rules`` (name, expected, actual, reason), so clients show both kinds alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.kbs.errors import KbsError
from workbench.kbs.identity import Presented
from workbench.protocol.errors import ErrorKind

MAX_NAMES = 256
MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class ReleaseOptions:
    """Who may receive a resource: users by name and members of groups (empty: anyone)."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.users or self.groups)

    def to_json(self) -> dict[str, list[str]]:
        return {"users": list(self.users), "groups": list(self.groups)}


@dataclass(frozen=True)
class RuleOutcome:
    name: str
    passed: bool
    expected: Any
    actual: Any
    reason: str

    def failed_json(self) -> dict[str, Any]:
        return {"name": self.name, "expected": self.expected, "actual": self.actual,
                "reason": self.reason}


def check_names(values: Sequence[str] | None, what: str) -> tuple[str, ...]:
    """Validated user or group names (admin input)."""
    if values is None:
        return ()
    if len(values) > MAX_NAMES:
        raise KbsError(ErrorKind.INVALID_POLICY, f"{what}: at most {MAX_NAMES} names")
    for value in values:
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS \
                or not value.isprintable():
            raise KbsError(ErrorKind.INVALID_POLICY, f"{what}: {value!r} is not a name")
    return tuple(dict.fromkeys(values))


def _listed(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]"


def _user_allowed(options: ReleaseOptions, presented: Presented) -> RuleOutcome | None:
    if not options.restricted:
        return None
    expected = options.to_json()
    wanted = " and ".join(part for part in (
        f"users {_listed(options.users)}" if options.users else "",
        f"groups {_listed(options.groups)}" if options.groups else "") if part)
    user = presented.user
    if user is None:
        why = ("the broker has no identity provider (hub_api_url) to check the user against"
               if not presented.checked else "no user identity was presented; releases are "
               "restricted to")
        return RuleOutcome("user-allowed", False, expected, None,
                           f"{why} {wanted} (a kernel started by JupyterHub sends "
                           "WORKBENCH_IDENTITY_TOKEN)")
    actual = user.to_json()
    shared = sorted(set(user.groups) & set(options.groups))
    if user.name in options.users:
        return RuleOutcome("user-allowed", True, expected, actual,
                           f"user '{user.name}' is named")
    if shared:
        return RuleOutcome("user-allowed", True, expected, actual,
                           f"user '{user.name}' is in group(s) {_listed(shared)}")
    parts = []
    if options.users:
        parts.append(f"is not in {_listed(options.users)}")
    if options.groups:
        parts.append(f"is in none of the groups {_listed(options.groups)} (their groups: "
                     f"{_listed(user.groups)})")
    return RuleOutcome("user-allowed", False, expected, actual,
                       f"user '{user.name}' " + " and ".join(parts))


# name -> rule; a rule returns None when the resource's options do not involve it.
RULES: dict[str, Callable[[ReleaseOptions, Presented], RuleOutcome | None]] = {
    "user-allowed": _user_allowed,
}


def judge_release(options: ReleaseOptions, presented: Presented) -> list[RuleOutcome]:
    """Every applicable rule's outcome, in table order."""
    return [outcome for rule in RULES.values()
            if (outcome := rule(options, presented)) is not None]


def failed(options: ReleaseOptions, presented: Presented) -> list[dict[str, Any]]:
    return [o.failed_json() for o in judge_release(options, presented) if not o.passed]
