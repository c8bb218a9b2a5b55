"""Store errors, and the one place SQLAlchemy's exceptions are translated into them.

KanmonError
└── StoreError
    ├── StoreUnavailable   the database cannot be reached or stayed locked past the busy timeout
    ├── StoreFenced        another gated has taken the store over since this one's lock was taken (SPEC §14)
    ├── NotFound           the row an operation names does not exist
    ├── Conflict           the row an operation would create already exists
    │   └── PrefixTaken    a channel adapter claims a JID prefix another adapter owns
    ├── InvalidValue       the database refused a value (a NUL byte in text on PostgreSQL, a number out of range)
    └── UnusableStore      the URL or the database is not a kanmon store kanmon can use (nothing was changed)
        └── NoStore        there is no store yet where one was expected
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from kanmon.errors import InvalidInput, KanmonError

__all__ = [
    "Conflict",
    "InvalidValue",
    "NoStore",
    "NotFound",
    "NotMigrated",
    "PrefixTaken",
    "StoreError",
    "StoreFenced",
    "StoreUnavailable",
    "UnusableStore",
    "translate_errors",
]


class StoreError(KanmonError):
    """Raised when a store operation fails."""


class NotMigrated(StoreError):
    """Raised when a command needs the schema but the store has not been migrated (``gated migrate``)."""


class StoreUnavailable(StoreError):
    """Raised when the database is unreachable or locked; the caller may retry later."""


class StoreFenced(StoreError):
    """Raised by a fenced write when another gated took the store over: this one must stop, not retry.

    The lock that makes one gated per store (:mod:`kanmon.store.lock`) can be lost without the holder noticing at
    once (a database restart ends its session). Every lock taker bumps the store's epoch; a write that routes or
    runs checks the epoch in its own transaction, so a gated that was overtaken can no longer change anything.
    """


class NotFound(StoreError, InvalidInput):
    """Raised when the row an operation names does not exist."""


class Conflict(StoreError, InvalidInput):
    """Raised when the row an operation would create already exists."""


class PrefixTaken(Conflict):
    """Raised when a channel adapter claims a JID prefix that overlaps one another adapter owns.

    ``prefix`` is the one claimed, ``owned`` the one it overlaps (equal, or one starts with the other), ``owner``
    the adapter that has it. Nothing was written.
    """

    def __init__(self, prefix: str, *, owned: str, owner: str) -> None:
        self.prefix, self.owned, self.owner = prefix, owned, owner
        super().__init__(f"JID prefix {prefix!r} overlaps {owned!r}, which channel adapter {owner!r} owns")


class InvalidValue(StoreError, InvalidInput):
    """Raised when the database refuses a value as such; nothing was written."""


class UnusableStore(StoreError, InvalidInput):
    """Raised when a store URL, file or database cannot be used as a kanmon store: an unsupported URL, a file that
    is not a SQLite database, another application's database, a schema revision this kanmon does not know.
    Nothing was created or changed."""


class NoStore(UnusableStore):
    """Raised when a command that only reads or changes a store finds none (it never creates one)."""


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy's errors into kanmon's, most specific first."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        raise Conflict(f"conflicts with an existing row: {exc.orig}") from exc
    except sa_exc.DataError as exc:
        raise InvalidValue(f"the database refused a value: {exc.orig}") from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    except sa_exc.TimeoutError as exc:
        raise StoreUnavailable(f"no database connection free: {exc}") from exc
    except (OverflowError, UnicodeEncodeError) as exc:  # the driver cannot even send it (an int past 64 bits, …)
        raise InvalidValue(f"the database cannot hold a value: {type(exc).__name__}: {exc}") from exc
