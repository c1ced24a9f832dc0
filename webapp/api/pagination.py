"""Query arguments. Pagination of every list: ?limit= (default DEFAULT_LIMIT, at most MAX_LIMIT) and ?offset=; the
answer says which slice it is and links the next one ({..., "limit", "offset", "next"}; next is null on the last
page). Yes/no flags: flag()."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request, url_for

from webapp.api.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # far past any list, and within the 64-bit integers SQLite and PostgreSQL take


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    @property
    def fetch(self) -> int:
        """How many rows to ask for: one more than the page shows tells whether another page follows."""
        return self.limit + 1

    def slice(self, items: list) -> list:
        return items[self.offset:self.offset + self.fetch]


def whole_number(name: str, default: int, lo: int, hi: int) -> int:
    """The query argument as a whole number from lo to hi (ASCII digits only: int() also reads other scripts'
    digits, and str.isdigit() takes superscripts that int() refuses); BadRequest otherwise."""
    text = request.args.get(name, str(default))
    if not (text.isascii() and text.isdigit()) or not lo <= int(text) <= hi:
        raise BadRequest(f"{name} must be a whole number from {lo} to {hi}")
    return int(text)


def flag(name: str, default: bool) -> bool:
    """A yes/no query argument: absent gives default; 0, false, no, off or empty is no; anything else yes."""
    value = request.args.get(name)
    return default if value is None else value.lower() not in ("0", "false", "no", "off", "")


def page(default: int = DEFAULT_LIMIT) -> Page:
    return Page(whole_number("limit", default, 1, MAX_LIMIT), whole_number("offset", 0, 0, MAX_OFFSET))


def paged(key: str, rows: list, pg: Page, serialize, **extra) -> dict:
    """The answer for one page of a list; rows: up to pg.fetch of them, from pg.offset on."""
    more = len(rows) > pg.limit
    nxt = url_for(request.endpoint, **(request.view_args or {}),
                  **{**request.args.to_dict(), "limit": pg.limit, "offset": pg.offset + pg.limit}) if more else None
    return {**extra, key: [serialize(r) for r in rows[:pg.limit]], "limit": pg.limit, "offset": pg.offset,
            "next": nxt}
