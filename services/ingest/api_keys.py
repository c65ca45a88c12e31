"""Touchpoint keys and the sources each may write."""

from __future__ import annotations

import secrets


class ApiKeys:
    def __init__(self, allowed_sources: dict[str, list[str]]) -> None:
        self._allowed = {key: frozenset(sources) for key, sources in allowed_sources.items()}

    def sources_for(self, key: str | None) -> frozenset[str] | None:
        """The sources `key` may write, or None for a missing or unknown key."""
        if not key:
            return None
        for known, sources in self._allowed.items():
            if secrets.compare_digest(key, known):
                return sources
        return None

    @staticmethod
    def may_write(sources: frozenset[str], source: str) -> bool:
        return "*" in sources or source in sources
