"""What can go wrong between a cell and a released key, each as one clear line.

In the kernel these render without a traceback (see ``kernel.py``): the message is the
whole story, and a traceback could only add noise (or, in verbose modes, local values).
"""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError


class KernelError(WorkbenchError):
    """Base of the confidential kernel's refusals."""


class BrokerUnreachable(KernelError):
    pass


class ReleaseRefused(KernelError):
    """The broker refused (policy, owner's denial, unknown resource...)."""

    def __init__(self, message: str, *, resource: str,
                 failed_rules: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.resource = resource
        self.failed_rules = failed_rules or []


class ApprovalRequired(KernelError):
    """No frontend can ask the analyst, and no non-interactive approval was given."""


class ApprovalDeclined(KernelError):
    pass


class ApprovalTimeout(KernelError):
    pass


def describe_rules(rules: list[dict[str, Any]]) -> str:
    """``name: reason`` for each failed rule, as the broker reported them."""
    return "; ".join(f"{r.get('name', '?')}: {r.get('reason') or 'failed'}" for r in rules)
