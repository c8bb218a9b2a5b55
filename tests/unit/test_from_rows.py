"""Rows become records by column name, whatever the order and whatever else the query selected (kanmon/store/base.py).

``from_row`` and ``from_rows`` look a query shape's columns up once and then read values by position; a cache keyed
wrongly would hand one query's layout to another's rows and swap fields silently.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from kanmon.store.base import from_row, from_rows


@dataclasses.dataclass(frozen=True)
class Pair:
    left: int
    right: str
    extra: str | None = None


COLUMNS = {"left": "1", "right": "'r'", "extra": "'e'", "other": "'ignored'"}


@given(order=st.permutations(list(COLUMNS)), drop_extra=st.booleans())
def test_a_record_takes_its_fields_by_name_in_any_column_order(order: list[str], drop_extra: bool) -> None:
    names = [name for name in order if not (drop_extra and name == "extra")]
    query = (
        "SELECT "
        + ", ".join(f"{COLUMNS[name]} AS {name}" for name in names)
        + " UNION ALL SELECT "
        + ", ".join(f"{COLUMNS[name]} AS {name}" for name in names)
    )
    expected = Pair(1, "r", None if drop_extra else "e")
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        assert from_rows(Pair, conn.execute(sa.text(query))) == [expected, expected]
        assert [from_row(Pair, row) for row in conn.execute(sa.text(query))] == [expected, expected]
    engine.dispose()
