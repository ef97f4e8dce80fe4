"""Reporters: turn facts and findings into text, JSON, SARIF or annotations. No torch here."""

from __future__ import annotations

from mulint.findings import Finding


def message_of(finding: Finding) -> str:
    """The message with the parameters it concerns: rules leave them out of the sentence itself."""
    return f"{finding.message} [{finding.parameter}]" if finding.parameter else finding.message
