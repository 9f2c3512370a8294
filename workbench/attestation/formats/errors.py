"""The one error parsers raise."""


class MalformedEvidence(ValueError):
    """The bytes are not evidence of the claimed kind (truncated, wrong version, bad field)."""
