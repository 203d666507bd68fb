"""Getting a feed: a local path, a file:// URL, or http(s) with conditional requests.

An unchanged feed costs one request: the ETag and Last-Modified of the last
good sync are sent back, and a 304 means nothing is downloaded or written.
For local files the content hash plays the same part.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from advisories.importers.documents import FeedFormatError

MAX_DOWNLOAD_BYTES = 2 << 30
TIMEOUT = (10.0, 120.0)  # connect, read


@dataclass(frozen=True)
class Fetched:
    path: Path | None  # None when the server said 304 Not Modified
    content_hash: str = ""
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        return self.path is None


def _hash_path(path: Path) -> str:
    """sha256 of a file, or of a directory tree's names and contents in a fixed order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _session() -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=4,
        backoff_factor=1.0,
        status_forcelist=(429, 500, 502, 503, 504),
        respect_retry_after_header=True,
        allowed_methods=("GET",),
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _download(url: str, workdir: Path, etag: str, last_modified: str) -> Fetched:
    headers = {"User-Agent": "vigil-advisory-sync/0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "feed"
    target = workdir / f"download-{name}"  # a name we choose, inside the work dir
    digest = hashlib.sha256()
    try:
        with _session().get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 304:
                return Fetched(None, etag=etag, last_modified=last_modified)
            if response.status_code != 200:
                raise FeedFormatError(f"{url} answered HTTP {response.status_code}")
            size = 0
            with target.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise FeedFormatError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            return Fetched(
                target,
                digest.hexdigest(),
                response.headers.get("ETag", ""),
                response.headers.get("Last-Modified", ""),
            )
    except requests.RequestException as exc:
        raise FeedFormatError(f"cannot download {url}: {exc}") from None


def fetch(location: str, workdir: Path, *, etag: str = "", last_modified: str = "") -> Fetched:
    """The feed at `location`, downloaded into `workdir` when it is remote."""
    scheme = urllib.parse.urlsplit(location).scheme
    if scheme in ("http", "https"):
        return _download(location, workdir, etag, last_modified)
    if scheme == "file":
        location = urllib.request.url2pathname(urllib.parse.urlsplit(location).path)
    elif scheme and len(scheme) > 1:  # one letter would be a Windows drive
        raise FeedFormatError(f"unsupported feed location {location!r} (use a path, file://, http:// or https://)")
    path = Path(location)
    if not path.exists():
        raise FeedFormatError(f"{path}: no such file or directory")
    return Fetched(path, _hash_path(path))
