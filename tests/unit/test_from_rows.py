"""Rows become records by column name, whatever the order and whatever else the query selected (kanmon/store/base.py).

``from_row`` and ``from_rows`` look a query shape's columns up once and then read values by position; a cache keyed
wrongly would hand one query's layout to another's rows and swap fields silently.
"""

from __future__ import annotations

import dataclasses

import pytest
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


@dataclasses.dataclass(frozen=True)
class Checked:
    value: int
    double: int

    def __post_init__(self) -> None:
        if self.double != 2 * self.value:
            raise ValueError("double must be twice the value")


@given(left=st.integers(-(2**62), 2**62), right=st.text(), extra=st.none() | st.text())
def test_a_record_built_from_its_row_is_the_record_its_init_builds(left: int, right: str, extra: str | None) -> None:
    """A record with every field in the row skips its generated __init__; what it gets must be the same record."""
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        query = sa.select(
            sa.literal(left).label("left"), sa.literal(right).label("right"), sa.literal(extra).label("extra")
        )
        [built] = from_rows(Pair, conn.execute(query))
    engine.dispose()
    expected = Pair(left, right, extra)
    assert built == expected and hash(built) == hash(expected) and repr(built) == repr(expected)
    assert dataclasses.replace(built, right="x") == Pair(left, "x", extra)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.left = 0  # type: ignore[misc]


def test_a_record_that_checks_its_fields_is_built_through_its_init() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        assert from_rows(Checked, conn.execute(sa.text("SELECT 2 AS value, 4 AS double"))) == [Checked(2, 4)]
        with pytest.raises(ValueError, match="twice"):
            from_rows(Checked, conn.execute(sa.text("SELECT 2 AS value, 5 AS double")))
    engine.dispose()
