"""Pagination of every list: ?limit= (default DEFAULT_LIMIT, at most MAX_LIMIT) and ?offset=; the answer says which
slice it is and links the next one ({..., "limit", "offset", "next"}; next is null on the last page)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request, url_for

from webapp.api.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


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


def page(default: int = DEFAULT_LIMIT) -> Page:
    limit, offset = request.args.get("limit", str(default)), request.args.get("offset", "0")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    if not offset.isdigit():
        raise BadRequest("offset must be a whole number (0 or more)")
    return Page(int(limit), int(offset))


def paged(key: str, rows: list, pg: Page, serialize, **extra) -> dict:
    """The answer for one page of a list; rows: up to pg.fetch of them, from pg.offset on."""
    more = len(rows) > pg.limit
    nxt = url_for(request.endpoint, **(request.view_args or {}),
                  **{**request.args.to_dict(), "limit": pg.limit, "offset": pg.offset + pg.limit}) if more else None
    return {**extra, key: [serialize(r) for r in rows[:pg.limit]], "limit": pg.limit, "offset": pg.offset,
            "next": nxt}
