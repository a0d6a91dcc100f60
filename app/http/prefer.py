"""The `Prefer` request header (RFC 7240) as the write routes read it, in PostgREST's words:

    Prefer: return=minimal                     no row read back: 201 or 204 with no body
    Prefer: return=headers-only                the same (PostgREST's name for it)
    Prefer: return=representation              the rows, as without the header
    Prefer: resolution=merge-duplicates        POST: a row whose key exists updates it (an upsert)
    Prefer: resolution=ignore-duplicates       POST: a row whose key exists is left as it is

As the RFC says, a preference the gateway does not know, or a value it does not know, is ignored,
and the first of a repeated preference counts; `Preference-Applied` names those honoured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Return = Literal["representation", "minimal", "headers-only"]
Resolution = Literal["merge-duplicates", "ignore-duplicates"]
RETURNS: tuple[Return, ...] = ("representation", "minimal", "headers-only")
RESOLUTIONS: tuple[Resolution, ...] = ("merge-duplicates", "ignore-duplicates")


@dataclass(frozen=True, slots=True)
class Preferences:
    returning: Return = "representation"
    resolution: Resolution | None = None
    applied: tuple[str, ...] = ()  # the honoured ones, as the request spelled them

    @property
    def minimal(self) -> bool:
        """No row read back, no body."""
        return self.returning != "representation"

    def headers(self) -> dict[str, str]:
        return {"Preference-Applied": ", ".join(self.applied)} if self.applied else {}


def parse(values: list[str], *, resolution: bool = False) -> Preferences:
    """Every `Prefer` header of a request (each a comma-separated list) -> the preferences a write
    honours; `resolution` for the routes that insert."""
    first: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            # `token [= value] *(; parameter)`: the parameters are not used by any preference here.
            name, _, given = item.split(";", 1)[0].partition("=")
            name, given = name.strip().lower(), given.strip().strip('"').lower()
            if name:
                first.setdefault(name, given)
    returning: Return = "representation"
    chosen: Resolution | None = None
    applied: list[str] = []
    for name, given in first.items():
        if name == "return" and given in RETURNS:
            returning = given
            applied.append(f"return={given}")
        elif name == "resolution" and resolution and given in RESOLUTIONS:
            chosen = given
            applied.append(f"resolution={given}")
    return Preferences(returning, chosen, tuple(applied))
