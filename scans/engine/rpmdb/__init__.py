"""Readers of rpm's package databases, without rpm and without Django.

rpm keeps one header blob per installed package, in one of three stores:
Berkeley DB hash `Packages` (rpm before 4.16: RHEL/CentOS 7 and 8, Amazon
Linux 2), NDB `Packages.db` (SUSE) and SQLite `rpmdb.sqlite` (Fedora 33+,
RHEL 9, Amazon Linux 2023). Each reader yields the raw blobs; `header` decodes
the tags the catalogers need.

No maintained pure-Python library reads these stores: the PyPI packages that
claim to (pyrpmdb, pygorpmrustinfo) wrap a native Go build of go-rpmdb, and the
`rpm` package is a shim for the system's librpm bindings. So the formats are
read here, following rpm 4.18's own readers (lib/backend/bdb_ro.c,
lib/backend/ndb/rpmpkg.c, lib/backend/sqlite.c, lib/header.c).

Every number read from a file is untrusted: each reader checks it against the
file before using it, bounds every loop by the file's size, and raises
ParseError (and nothing else) for malformed bytes.
"""

from scans.engine.rpmdb.bdb import iter_bdb_blobs
from scans.engine.rpmdb.header import Header
from scans.engine.rpmdb.ndb import iter_ndb_blobs
from scans.engine.rpmdb.sqlite import iter_sqlite_blobs

__all__ = ["Header", "iter_bdb_blobs", "iter_ndb_blobs", "iter_sqlite_blobs"]
