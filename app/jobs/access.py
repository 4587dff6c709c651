"""Who is asking: the principal every job operation is checked against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An API key's name, and whether it may see every job (admin) or only its own."""

    name: str | None
    is_admin: bool

    def may_see(self, owner: str | None) -> bool:
        return self.is_admin or self.name == owner


#: No keys configured: every caller sees every job.
ANONYMOUS = Principal(name=None, is_admin=True)
