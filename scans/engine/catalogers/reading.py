"""Bounded reads of kept files for the language catalogers.

The layer reader already caps one kept file at `Limits.max_file_bytes`
(1 GiB); the caps here are what one lockfile or metadata file can sensibly
need, so that a hostile image cannot make a cataloger build huge strings or
parse trees. Every failure is a ParseError naming the file.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError

# The largest real lockfiles (package-lock.json of monorepos) reach tens of MB.
MAX_LOCKFILE_BYTES = 64 << 20


def read_limited(file: FileContent, limit: int = MAX_LOCKFILE_BYTES) -> bytes:
    """All of `file`, or a ParseError when it is larger than `limit`."""
    if file.size > limit:
        raise ParseError(f"{file.path}: {file.size} bytes is more than the {limit} this file type may have")
    with file.open() as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:  # `size` was wrong; never trust it alone
        raise ParseError(f"{file.path}: more than the {limit} bytes this file type may have")
    return data


def read_head(file: FileContent, limit: int) -> bytes:
    """The first `limit` bytes of `file`, for formats whose useful part comes first."""
    with file.open() as stream:
        return stream.read(limit)


def decode(data: bytes, path: str) -> str:
    """UTF-8 text (a BOM is dropped); binary content is a ParseError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise ParseError(f"{path}: binary content (a NUL byte) in a text file")
    return text


def load_json(file: FileContent, limit: int = MAX_LOCKFILE_BYTES) -> Any:
    text = decode(read_limited(file, limit), file.path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ParseError(f"{file.path}: invalid JSON ({str(exc)[:200]})") from None


def load_toml(file: FileContent, limit: int = MAX_LOCKFILE_BYTES) -> dict[str, Any]:
    text = decode(read_limited(file, limit), file.path)
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ParseError(f"{file.path}: invalid TOML ({str(exc)[:200]})") from None


def table_list(value: object, what: str, path: str) -> list[dict[str, Any]]:
    """`value` as a list of tables (objects), or a ParseError saying which key was wrong."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ParseError(f"{path}: `{what}` is not a list of tables")
    return value


def text_field(table: dict[str, Any], key: str) -> str:
    """A string field, stripped; "" when absent or not a string."""
    value = table.get(key)
    return value.strip() if isinstance(value, str) else ""
