"""The one error type of the groups package: a stable ``code`` the web layer maps to a status."""

from __future__ import annotations


class GroupError(Exception):
    """A well-formed request that cannot be carried out (no such group, not open yet, …)."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
