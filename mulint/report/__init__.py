"""Reporters: turn facts and findings into text, JSON, SARIF or annotations. No torch here."""
