"""Appraisal policies: JSON data checked against ``policy.schema.json``, then a frozen value.

A policy says which TEE types, reference values and TCB states a data owner accepts. Unknown
keys are errors (a misspelt ``alow_simulation`` must not silently mean "false"), and every
error names the key and where it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.attestation.formats import strict_json
from workbench.attestation.verify.claims import TEE_CLAIMS
from workbench.errors import InputError

if TYPE_CHECKING:
    import jsonschema

TEE_TYPES = ("sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm", "simulated")
# TEEs whose reference values include SEV-SNP guest policy bits (the Azure one carries an
# SEV-SNP report too).
SNP_POLICY_TEES = ("snp", "az-snp-vtpm")
TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
DEFAULT_MAX_AGE_S = 300
# Largest policy file we read; policies are a few hundred bytes.
MAX_POLICY_BYTES = 1024 * 1024
# The SEV-SNP guest policy bits a policy may require, as verify decodes them.
SNP_POLICY_FLAGS: tuple[str, ...] = TEE_CLAIMS["snp"].decoded("policy_flags")
# Other names a policy may give a guest policy bit of ``SNP_POLICY_FLAGS`` (alias -> its name
# there). Policies written before bit 24 took its specification name CIPHERTEXT_HIDING_DRAM
# say "ciphertext_hiding"; they keep loading and mean the same bit.
SNP_POLICY_ALIASES: dict[str, str] = {"ciphertext_hiding": "ciphertext_hiding_dram"}


class PolicyError(InputError):
    """A policy that is not valid JSON or does not match the schema."""


@cache
def policy_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("policy.schema.json").read_text("utf-8")
    schema = json.loads(text)
    # The guest policy bits are declared once (verify.claims); the schema file leaves them out.
    for tee in SNP_POLICY_TEES:
        refs = schema["properties"]["reference_values"]["properties"][tee]
        refs["properties"]["policy"]["properties"] = {
            name: {"type": "boolean"} for name in (*SNP_POLICY_FLAGS, *SNP_POLICY_ALIASES)
        }
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    # Imported on first use, not with this module: with rfc3987-syntax installed (Jupyter
    # brings it) importing jsonschema builds a grammar, seconds on a busy machine, and the
    # kernel imports this package (EAR tokens) at every start without loading a policy.
    import jsonschema

    schema = policy_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@dataclass(frozen=True)
class Policy:
    """A validated policy. Hex reference values are lower-case; single values become tuples."""

    id: str
    name: str = ""
    allowed_tee: tuple[str, ...] = TEE_TYPES
    reference_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    debug_allowed: bool = False
    accepted_tcb_statuses: tuple[str, ...] = ("UpToDate",)
    max_evidence_age_s: int = DEFAULT_MAX_AGE_S
    allow_simulation: bool = False
    # "required": only a kernel locked to a frontend's sealed session (its evidence binds
    # the session key) passes; docs/sealed-sessions.md.
    sealed_session: str = "optional"
    # Analysts (by name) and analyst groups the data owner registered with the broker; a
    # non-empty list restricts releases to sealed sessions they certified. Judged by the
    # broker against its analyst table, not here: who someone is, is not evidence.
    analysts: tuple[str, ...] = ()
    analyst_groups: tuple[str, ...] = ()

    @property
    def names_analysts(self) -> bool:
        return bool(self.analysts or self.analyst_groups)

    def references(self, tee: str) -> dict[str, Any]:
        return self.reference_values.get(tee, {})

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"id": self.id}
        if self.name:
            document["name"] = self.name
        document.update(
            allowed_tee=list(self.allowed_tee),
            reference_values={
                tee: {k: list(v) if isinstance(v, tuple) else v for k, v in refs.items()}
                for tee, refs in self.reference_values.items()
            },
            debug_allowed=self.debug_allowed,
            accepted_tcb_statuses=list(self.accepted_tcb_statuses),
            max_evidence_age_s=self.max_evidence_age_s,
            allow_simulation=self.allow_simulation,
        )
        if self.sealed_session != "optional":
            document["sealed_session"] = self.sealed_session
        if self.analysts:
            document["analysts"] = list(self.analysts)
        if self.analyst_groups:
            document["analyst_groups"] = list(self.analyst_groups)
        return document


def _location(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    # oneOf failures read badly ("is not valid under any of the given schemas"); the deepest
    # sub-error says what was wrong with the value itself.
    import jsonschema

    best = jsonschema.exceptions.best_match([error])
    while best.context:
        best = jsonschema.exceptions.best_match(best.context)
    return f"{_location(error)}: {best.message}"


def _normalise(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, float):
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def _as_tuple(value: Any) -> Any:
    return value if isinstance(value, tuple | dict | bool) else (value,)


def _snp_policy_bits(bits: dict[str, bool], label: str, where: str) -> dict[str, bool]:
    """Required guest policy bits under their ``SNP_POLICY_FLAGS`` names (aliases resolved)."""
    named: dict[str, bool] = {}
    for key, value in bits.items():
        name = SNP_POLICY_ALIASES.get(key, key)
        if name in named:
            raise PolicyError(f"{label}: {where}: '{key}' and '{name}' "
                              "name the same guest policy bit")
        named[name] = value
    return named


def _reference_values(document: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for tee, refs in document.get("reference_values", {}).items():
        normalised = {}
        for key, value in refs.items():
            value = _normalise(value)
            # min_* and the structured SNP fields are single values; the rest are "one of".
            keep_single = key.startswith("min_") or isinstance(value, dict)
            normalised[key] = value if keep_single else _as_tuple(value)
        if tee in SNP_POLICY_TEES and "policy" in normalised:
            normalised["policy"] = _snp_policy_bits(normalised["policy"], label,
                                                    f"reference_values/{tee}/policy")
        if "pcrs" in normalised:
            # Each PCR is "one of" its values, like the top-level hex references.
            normalised["pcrs"] = {k: _as_tuple(v) for k, v in normalised["pcrs"].items()}
        result[tee] = normalised
    return result


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as err:
        raise PolicyError(f"{path}: cannot read policy ({err.strerror or err})") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: policy is larger than {MAX_POLICY_BYTES} bytes")
    try:
        document = strict_json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PolicyError(f"{path}: policy is not valid JSON ({err})") from None
    return document


def load_policy(source: str | Path | dict[str, Any]) -> Policy:
    """Validate a policy (a path to a JSON file, or the parsed document) and return it."""
    if isinstance(source, str | Path):
        label, document = str(source), _read(Path(source))
    else:
        label, document = "policy", source
    if not isinstance(document, dict):
        raise PolicyError(f"{label}: a policy must be a JSON object")
    errors = sorted(
        _validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        raise PolicyError(f"{label}: {_describe(errors[0])}")
    return Policy(
        id=document["id"],
        name=document.get("name", ""),
        allowed_tee=tuple(document.get("allowed_tee", TEE_TYPES)),
        reference_values=_reference_values(document, label),
        debug_allowed=document.get("debug_allowed", False),
        accepted_tcb_statuses=tuple(document.get("accepted_tcb_statuses", ("UpToDate",))),
        max_evidence_age_s=int(document.get("max_evidence_age_s", DEFAULT_MAX_AGE_S)),
        allow_simulation=document.get("allow_simulation", False),
        sealed_session=document.get("sealed_session", "optional"),
        analysts=tuple(document.get("analysts", ())),
        analyst_groups=tuple(document.get("analyst_groups", ())),
    )
