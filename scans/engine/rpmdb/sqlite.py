"""SQLite `rpmdb.sqlite`, the rpm database since rpm 4.16.

The blobs are in table `Packages (hnum INTEGER PRIMARY KEY, blob BLOB)`. The
file comes from an untrusted image, so it is opened read-only and immutable
(SQLite then writes no journal or -shm file beside it and takes no locks), the
table must be a plain table rather than a view or computed columns that could
run for ever, and a progress handler stops a query that runs longer than a
scan of a file this size can take.

rpm leaves the database in WAL mode, but checkpoints the log when it closes
the database; an -wal file left with content in an image is not read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from scans.engine.errors import ParseError
from scans.engine.rpmdb.header import MAX_BLOB

_PROGRESS_STEP = 1000  # virtual machine instructions between progress checks
# A table scan costs a few instructions per row, and a row takes at least a
# few bytes of the file; this many checks per byte is far more than enough.
_CHECKS_PER_KIB = 64


def iter_sqlite_blobs(path: str) -> Iterator[bytes]:
    """The header blobs of an `rpmdb.sqlite` file at `path` on local disk."""
    uri = Path(path).absolute().as_uri() + "?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise ParseError(f"SQLite database cannot be opened: {err}") from err
    try:
        _limit_work(connection, os.path.getsize(path))
        yield from _blobs(connection)
    # SQLite's messages about a broken schema quote it, and Python fails to
    # decode such a message when the schema text is not UTF-8.
    except (sqlite3.Error, UnicodeDecodeError) as err:
        raise ParseError(f"SQLite database cannot be read: {err}") from err
    finally:
        connection.close()


def _limit_work(connection: sqlite3.Connection, size: int) -> None:
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_BLOB)
    checks_left = 1000 + size * _CHECKS_PER_KIB // 1024

    def over_budget() -> bool:
        nonlocal checks_left
        checks_left -= 1
        return checks_left < 0  # True interrupts the statement with an error

    connection.set_progress_handler(over_budget, _PROGRESS_STEP)


def _blobs(connection: sqlite3.Connection) -> Iterator[bytes]:
    # Text cells come back undecoded: the file's text is as untrusted as its blobs.
    connection.text_factory = bytes
    kind = connection.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
    if kind != (b"table",):
        raise ParseError("SQLite database has no Packages table")
    # table_xinfo marks generated columns as hidden (2 or 3).
    columns = {row[1]: row[6] for row in connection.execute("PRAGMA table_xinfo('Packages')")}
    if columns.get(b"blob") != 0:
        raise ParseError("SQLite Packages table has no plain blob column")
    for (blob,) in connection.execute("SELECT blob FROM Packages"):
        if not isinstance(blob, bytes):
            raise ParseError(f"SQLite Packages row holds {type(blob).__name__}, not a blob")
        yield blob
