"""The answers of the query-insight routes (webapp/api/statements.py)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from webapp.schemas.responses import Shape

ORDERS = ("total_time", "calls", "mean_time", "rows")  # services/statements.py maps each to its column
TOP_DEFAULT, TOP_MAX = 20, 100  # statements in an answer


class Statement(Shape):
    queryid: str = Field(description="pg_stat_statements' queryid, as text (a 64-bit number)")
    database: str
    query: str = Field(description="the normalized text (constants as $1, $2...), cut at 2,000 characters")
    calls: int
    total_time_ms: float
    mean_time_ms: float
    rows: int
    members: list[str] = Field(description="the members where it ran (the standby serves the read-only URI)")


class Statements(Shape):
    instance: str
    database: str | None = Field(description="null: every database of the instance (admins; `?database=` narrows it)")
    order: Literal[ORDERS]  # type: ignore[valid-type]
    limit: int
    statements: list[Statement]
    members: list[str] = Field(description="the members asked")
    unreachable: list[str] = Field(description="members that did not answer: their statements are missing")


class StatementsReset(Shape):
    instance: str
    database: str
    reset_on: list[str]
    unreachable: list[str]


RESPONSES = [Statements, StatementsReset]
