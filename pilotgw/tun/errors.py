"""The one exception type raised by the gateway's kernel side.

Everything here changes the host's network configuration, so failures must
tell an operator what to do, not just what broke: each error carries a
machine-readable ``code`` (the CLI's vocabulary: ``permission_denied``,
``already_exists``, ``invalid_argument``, ``unavailable``, ``internal``) and,
where there is a fix, a ``hint``.
"""

from __future__ import annotations


class KernelError(Exception):
    """A kernel-side operation was refused or failed.

    ``code`` names the cause for programs; ``hint`` is the next step for a
    human (empty when there is nothing useful to suggest).
    """

    def __init__(self, message: str, code: str = "internal", hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint
