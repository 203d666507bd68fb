"""Streaming layer reader: applies layers in order and keeps only wanted files.

Each layer blob is read once, front to back, and never extracted to disk.
The reader builds an in-memory tree of the final filesystem (names, types,
link targets, which layer wrote each entry), applies whiteouts and opaque
directories, and keeps the bytes of the few files that catalogers declared
they need. Everything in a layer is untrusted: names are normalised inside
the image root, links are resolved inside it, and sizes are bounded by
`Limits`.

Binaries (Go, Rust) can live at any path, so a path test cannot select them.
When a cataloger asks for executables, a regular file with an executable
bit that is not otherwise wanted has its first bytes read from the stream;
if they are a binary's magic number the file is kept (those bytes and the
rest), otherwise the rest is skipped. The layer is still read once. A
distro image holds hundreds of binaries, few of them Go or Rust, so with
an `inspect` callback each binary is handed over as soon as it is read and
its bytes are dropped: only what the callback made of them stays, and
neither memory nor the work dir grows with the binaries of an image.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import stat
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import zstandard

from scans.engine.errors import DigestMismatchError, HostileContentError, ImageFormatError
from scans.engine.executables import SNIFF_BYTES, looks_like_binary
from scans.engine.models import Layer
from scans.engine.tarstream import Entry, TarFormatError, TarReader

_READ = 1 << 20  # compressed bytes read at a time
_OUT = 4 << 20  # most decompressed bytes produced per step, so a bomb cannot balloon memory
_KEEP_IN_MEMORY = 4 << 20  # kept files larger than this spill to the work dir
# Binaries are many (hundreds in a distro image). Kept until every layer is
# applied, all but small ones go to disk; handed to `inspect` at once and
# dropped, they are held in memory unless large.
_KEEP_BINARY_IN_MEMORY = 64 << 10
_INSPECT_IN_MEMORY = 16 << 20
_MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS
_EXECUTABLE = 0o111  # any of the owner, group and other execute bits
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one image may make the reader do."""

    max_layer_bytes: int = 16 << 30  # uncompressed size of one layer
    max_ratio: int = 200  # uncompressed / compressed, checked past ratio_floor_bytes
    ratio_floor_bytes: int = 64 << 20
    max_entries: int = 1_000_000  # tar members in one layer
    max_file_bytes: int = 1 << 30  # one kept file
    max_kept_bytes: int = 4 << 30  # all kept files together
    # One sniffed binary. A larger one is passed over with a warning, not
    # failed on: a huge executable is no sign of a hostile image.
    max_binary_bytes: int = 256 << 20


# --------------------------------------------------------------------------
# Kept files


@dataclass
class KeptFile:
    """Bytes of one wanted file as one layer wrote it."""

    path: str
    size: int
    layer: int
    executable: bool = False  # kept by the binary sniff rather than by a cataloger's `wants`
    inspection: object = None  # what LayerReader's `inspect` made of a binary before its bytes were dropped
    _data: bytes | None = None
    _disk: str | None = None
    _workdir: Path | None = None

    def read_bytes(self) -> bytes:
        if self._data is not None:
            return self._data
        return Path(self.local_path()).read_bytes()

    def open(self) -> BinaryIO:
        if self._data is not None:
            return io.BytesIO(self._data)
        return open(self.local_path(), "rb")  # noqa: SIM115 - the caller closes it

    def release(self) -> None:
        """Drop the bytes (memory and disk); the file can no longer be read."""
        self._data = None
        if self._disk is not None:
            Path(self._disk).unlink(missing_ok=True)
            self._disk = None
        self._workdir = None

    def local_path(self) -> str:
        if self._disk is None:
            if self._workdir is None or self._data is None:
                raise RuntimeError(f"kept file {self.path} has neither bytes nor a file")
            self._disk = _spill_path(self._workdir)
            Path(self._disk).write_bytes(self._data)
        return self._disk


def _spill_path(workdir: Path) -> str:
    fd, name = _mkstemp(workdir)
    os.close(fd)
    return name


def _mkstemp(workdir: Path) -> tuple[int, str]:
    # Names are generated, never taken from the image, so nothing can be
    # written outside the work dir whatever a layer contains.
    return tempfile.mkstemp(prefix="kept-", dir=workdir)


# --------------------------------------------------------------------------
# The tree


_LEAF: dict[str, Node] = {}


class Node:
    """One entry of the merged filesystem."""

    __slots__ = ("children", "kind", "layer", "link", "size", "kept")

    def __init__(self, kind: str, layer: int, size: int = 0, link: str = "") -> None:
        self.kind = kind  # "dir", "file", "symlink", "hardlink", "other"
        self.layer = layer
        self.size = size
        self.link = link  # symlink target as written, or hardlink target (root-relative)
        # Only directories get a dict of their own; the shared empty one is never written to.
        self.children: dict[str, Node] = {} if kind == "dir" else _LEAF
        self.kept: KeptFile | None = None


def normalize(name: str) -> str:
    """A member name as a path relative to the image root, without `.` or `..`.

    Leading slashes are dropped (the image root is the only root); a `..`
    that would climb above the root is hostile.
    """
    if "//" not in name and "/." not in name and not name.startswith(("/", ".")):
        return name.rstrip("/")  # already normal: the common case, kept cheap
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise HostileContentError(f"member {name!r} escapes the image root (path traversal)")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class Tree:
    """The merged filesystem of the layers applied so far."""

    def __init__(self) -> None:
        self.root = Node("dir", -1)
        # Every version of every kept path, oldest first; None marks a deletion.
        self.history: dict[str, list[KeptFile | None]] = {}

    def _parent(self, parts: list[str], layer: int) -> Node:
        node = self.root
        for part in parts:
            child = node.children.get(part)
            if child is None or child.kind != "dir":
                # Parents missing from the tar are implied; a non-directory in
                # the way is replaced, as a container runtime would.
                child = Node("dir", layer)
                node.children[part] = child
            node = child
        return node

    def get(self, path: str) -> Node | None:
        node = self.root
        if not path:
            return node
        for part in path.split("/"):
            found = node.children.get(part)
            if found is None:
                return None
            node = found
        return node

    def add(self, path: str, node: Node) -> None:
        parts = path.split("/")
        parent = self._parent(parts[:-1], node.layer)
        old = parent.children.get(parts[-1])
        if old is not None and old.kind == "dir" and node.kind == "dir":
            old.layer = node.layer  # a directory listed again keeps what lies below it
            return
        if old is not None and (old.kind == "dir" or node.kind != "file"):
            # What was below is gone; a file replacing a file is recorded by keep().
            self._note_deleted(path, node.layer)
        parent.children[parts[-1]] = node

    def whiteout(self, path: str, layer: int) -> None:
        parts = path.split("/")
        parent = self.get("/".join(parts[:-1]))
        if parent is None:
            return
        old = parent.children.get(parts[-1])
        if old is not None and old.layer < layer:
            del parent.children[parts[-1]]
            self._note_deleted(path, layer)

    def opaque(self, path: str, layer: int) -> None:
        node = self.get(path)
        if node is not None and node.kind == "dir":
            self._drop_lower(node, path, layer)

    def _drop_lower(self, node: Node, path: str, layer: int) -> None:
        for name, child in list(node.children.items()):
            child_path = f"{path}/{name}" if path else name
            if child.layer < layer:
                del node.children[name]
                self._note_deleted(child_path, layer)
            elif child.kind == "dir":
                self._drop_lower(child, child_path, layer)

    def _note_deleted(self, path: str, layer: int) -> None:
        prefix = path + "/"
        for kept_path, versions in self.history.items():
            if (kept_path == path or kept_path.startswith(prefix)) and versions[-1] is not None:
                versions.append(None)

    def keep(self, kept: KeptFile) -> None:
        self.history.setdefault(kept.path, []).append(kept)

    def resolve(self, path: str) -> tuple[str, Node] | None:
        """Follow links in every component of `path`, never leaving the root."""
        hops = 0
        done: list[str] = []
        todo = [p for p in path.split("/") if p][::-1]
        node = self.root
        while todo:
            part = todo.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                    node = self.get("/".join(done)) or self.root
                continue
            child = node.children.get(part)
            if child is None:
                return None
            if child.kind in ("symlink", "hardlink"):
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise HostileContentError(f"too many levels of links resolving {path!r}")
                link_path = "/".join([*done, part])
                target = self._link_target(link_path, child)
                todo.extend(reversed(target.split("/")))
                done, node = [], self.root
                continue
            done.append(part)
            node = child
        return "/".join(done), node

    @staticmethod
    def _link_target(link_path: str, node: Node) -> str:
        if node.kind == "hardlink" or node.link.startswith("/"):
            base = node.link
        else:
            base = "/".join([*link_path.split("/")[:-1], node.link])
        try:
            return normalize(base)
        except HostileContentError:
            raise HostileContentError(f"link {link_path!r} -> {node.link!r} escapes the image root") from None

    def walk(self) -> Iterator[tuple[str, Node]]:
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            path, node = stack.pop()
            if path:
                yield path, node
            if node.children:
                for name, child in node.children.items():
                    stack.append((f"{path}/{name}" if path else name, child))


# --------------------------------------------------------------------------
# Decompression with limits and digest checks


def sniff_compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


@dataclass
class BlobSpec:
    """How to read one layer blob and what its bytes must hash to."""

    layer: Layer
    open: Callable[[], BinaryIO]  # the blob as stored (compressed or not)
    compression: str | None = "auto"  # "gzip", "zstd", None for plain tar, "auto" to sniff
    verify_blob: bool = True  # check sha256(blob) == layer.digest
    verify_diff_id: bool = False  # check sha256(tar) == layer.diff_id


class _HashingReader:
    def __init__(self, raw: BinaryIO, digest: bool) -> None:
        self.raw = raw
        self.hash = hashlib.sha256() if digest else None
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        if self.hash is not None:
            self.hash.update(data)
        return data


class LayerStream:
    """The uncompressed tar of a layer, read front to back.

    Decompression and hashing run in a worker thread (zlib, zstd and
    hashlib release the GIL), so they overlap with header parsing here; a
    small bounded queue keeps memory flat.
    """

    def __init__(self, spec: BlobSpec, limits: Limits) -> None:
        self.spec = spec
        self.limits = limits
        self.name = spec.layer.digest
        self._raw = _HashingReader(spec.open(), spec.verify_blob)
        self._head = b""
        compression = spec.compression
        if compression == "auto":
            self._head = self._raw.read(4)
            compression = sniff_compression(self._head)
        self._out_hash = hashlib.sha256() if spec.verify_diff_id else None
        self._buf = b""
        self._off = 0
        self.total_out = 0
        self._chunks = _Producer(self._checked(self._decompress(compression)))

    def _source(self) -> Iterator[bytes]:
        if self._head:
            yield self._head
        while data := self._raw.read(_READ):
            yield data

    def _decompress(self, compression: str | None) -> Iterator[bytes]:
        if compression is None:
            return self._source()
        if compression == "gzip":
            return self._gunzip()
        if compression == "zstd":
            return self._unzstd()
        raise ImageFormatError(f"layer {self.name}: unsupported compression {compression!r}")

    def _gunzip(self) -> Iterator[bytes]:
        d = zlib.decompressobj(31)
        started = False
        try:
            for data in self._source():
                while data:
                    if d.eof:
                        # A new gzip member, or zero padding after the last one.
                        if not data.strip(b"\0"):
                            break
                        d = zlib.decompressobj(31)
                    started = True
                    out = d.decompress(data, _OUT)
                    data = d.unused_data if d.eof else d.unconsumed_tail
                    if out:
                        yield out
        except zlib.error as exc:
            raise ImageFormatError(f"layer {self.name}: corrupt gzip data ({exc})") from None
        if started and not d.eof:
            raise ImageFormatError(f"layer {self.name}: gzip stream is truncated")

    def _unzstd(self) -> Iterator[bytes]:
        raw = _Prepend(self._head, self._raw)
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, raw), read_size=_READ, read_across_frames=True
        )
        try:
            while out := reader.read(_OUT):
                yield out
        except zstandard.ZstdError as exc:
            raise ImageFormatError(f"layer {self.name}: corrupt zstd data ({exc})") from None

    def _checked(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        limits = self.limits
        for chunk in chunks:
            self.total_out += len(chunk)
            if self.total_out > limits.max_layer_bytes:
                raise HostileContentError(
                    f"layer {self.name} decompresses to more than {limits.max_layer_bytes} bytes (limit)"
                )
            if self.total_out > limits.ratio_floor_bytes and self.total_out > limits.max_ratio * max(
                self._raw.count, 1
            ):
                raise HostileContentError(
                    f"layer {self.name} expands more than {limits.max_ratio}:1 (decompression bomb?)"
                )
            yield chunk
        self._check_blob_digest()

    def _next(self) -> bytes:
        # The uncompressed digest is computed here, in the reading thread,
        # while the worker decompresses the next chunk.
        chunk = self._chunks.next()
        if self._out_hash is not None:
            if chunk:
                self._out_hash.update(chunk)
            else:
                self._check_diff_id()
        return chunk

    def read(self, n: int) -> bytes:
        """Up to n bytes; fewer only at the end of the stream."""
        available = len(self._buf) - self._off
        if available >= n:
            out = self._buf[self._off : self._off + n]
            self._off += n
            return out
        parts = [self._buf[self._off :]] if available else []
        needed = n - available
        self._buf, self._off = b"", 0
        while needed > 0:
            chunk = self._next()
            if not chunk:
                break
            if len(chunk) > needed:
                parts.append(chunk[:needed])
                self._buf, self._off = chunk, needed
                break
            parts.append(chunk)
            needed -= len(chunk)
        return b"".join(parts)

    def skip(self, n: int) -> None:
        available = len(self._buf) - self._off
        if available >= n:
            self._off += n
            return
        n -= available
        self._buf, self._off = b"", 0
        while n > 0:
            chunk = self._next()
            if not chunk:
                raise TarFormatError("unexpected end of data")
            if len(chunk) > n:
                self._buf, self._off = chunk, n
                return
            n -= len(chunk)

    def finish(self) -> None:
        """Read to the end: only zero padding may follow the archive; digests must match."""
        tail = self._buf[self._off :]
        while True:
            if tail.strip(b"\0"):
                raise ImageFormatError(f"layer {self.name}: corrupt tar (data after the end of the archive)")
            tail = self._next()
            if not tail:
                break

    def _check_blob_digest(self) -> None:
        spec = self.spec
        if self._raw.hash is not None:
            while self._raw.read(_READ):
                pass  # bytes after the compressed stream are part of the blob too
            got = "sha256:" + self._raw.hash.hexdigest()
            if got != spec.layer.digest:
                raise DigestMismatchError(f"layer blob {spec.layer.digest} has digest {got}")

    def _check_diff_id(self) -> None:
        spec = self.spec
        if self._out_hash is not None:
            got = "sha256:" + self._out_hash.hexdigest()
            if got != spec.layer.diff_id:
                raise DigestMismatchError(
                    f"layer {spec.layer.digest}: uncompressed digest {got} != diff_id {spec.layer.diff_id}"
                )

    def close(self) -> None:
        self._chunks.close()
        self._raw.raw.close()


class _Producer:
    """Runs an iterator in a thread; `next()` returns b"" at its end and re-raises its errors."""

    _END = object()

    def __init__(self, chunks: Iterator[bytes], depth: int = 8) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(chunks,), daemon=True, name="layer-decompress")
        self._thread.start()

    def _run(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if item is self._END:
            self._done = True
            return b""
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Prepend:
    """A reader that returns `head` before the rest of `raw` (after sniffing)."""

    def __init__(self, head: bytes, raw: _HashingReader) -> None:
        self.head = head
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.raw.read(n)


# --------------------------------------------------------------------------
# Applying layers


class _Readable(Protocol):
    def read(self, n: int) -> bytes: ...


class _Prefixed:
    """A file's sniffed first bytes, then the rest of it from where the sniff stopped."""

    def __init__(self, head: bytes, rest: _Readable) -> None:
        self.head = head
        self.rest = rest

    def read(self, n: int) -> bytes:
        if not self.head:
            return self.rest.read(n)
        out, self.head = self.head[:n], self.head[n:]
        return out + self.rest.read(n - len(out)) if len(out) < n else out


@dataclass
class ReadStats:
    layers: int = 0
    entries: int = 0
    kept_files: int = 0
    kept_bytes: int = 0
    warnings: list[str] = field(default_factory=list)


class LayerReader:
    """Applies layers bottom first and keeps the files `wants` selects.

    With `wants_executable`, also the executables (path, size) it accepts
    whose first bytes look like a binary (see the module docstring); with
    `inspect` too, each such binary is passed to it when read, the result
    stored in its `inspection`, and its bytes dropped.
    """

    def __init__(
        self,
        wants: Callable[[str], bool],
        workdir: Path,
        limits: Limits | None = None,
        wants_executable: Callable[[str, int], bool] | None = None,
        inspect: Callable[[KeptFile], object] | None = None,
    ) -> None:
        self.wants = wants
        self.wants_executable = wants_executable
        self.inspect = inspect
        self.workdir = workdir
        self.limits = limits or Limits()
        self.tree = Tree()
        self.stats = ReadStats()

    # -- tar layers --------------------------------------------------------

    def apply(self, spec: BlobSpec, only: set[str] | None = None) -> None:
        """Apply one layer; with `only`, just keep those paths (a second pass)."""
        self._apply(LayerStream(spec, self.limits), spec, only)

    def apply_all(self, specs: Sequence[BlobSpec]) -> None:
        """Apply layers in order, decompressing the next one while this one is applied."""
        ahead: LayerStream | None = None
        try:
            for number, spec in enumerate(specs):
                stream = ahead or LayerStream(spec, self.limits)
                ahead = LayerStream(specs[number + 1], self.limits) if number + 1 < len(specs) else None
                self._apply(stream, spec, None)
        finally:
            if ahead is not None:
                ahead.close()

    def _apply(self, stream: LayerStream, spec: BlobSpec, only: set[str] | None) -> None:
        try:
            self._apply_stream(TarReader(stream), stream.name, spec.layer.index, only)
            stream.finish()
        except TarFormatError as exc:
            raise ImageFormatError(f"layer {spec.layer.digest}: corrupt tar ({exc})") from None
        finally:
            stream.close()
        if only is None:
            self.stats.layers += 1

    def _apply_stream(self, tar: TarReader, name: str, layer: int, only: set[str] | None) -> None:
        count = 0
        for entry in tar:
            count += 1
            if count > self.limits.max_entries:
                raise HostileContentError(f"layer {name} has more than {self.limits.max_entries} entries")
            path = normalize(entry.name)
            if not path:
                continue
            if only is None:
                self._apply_entry(tar, entry, path, layer)
            elif path in only and entry.kind == "file":
                self._keep(path, entry.size, layer, tar, replace=True)
        self.stats.entries += count

    def _apply_entry(self, tar: TarReader, entry: Entry, path: str, layer: int) -> None:
        head, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE_MARKER:
                self.tree.opaque(head, layer)
            else:
                self.tree.whiteout(f"{head}/{base[4:]}" if head else base[4:], layer)
            return
        kind = entry.kind
        if kind == "hardlink":
            self.tree.add(path, Node(kind, layer, link=normalize(entry.linkname)))  # normalize raises on traversal
        elif kind == "symlink":
            self.tree.add(path, Node(kind, layer, link=entry.linkname))
        elif kind == "file":
            node = Node(kind, layer, entry.size)
            self.tree.add(path, node)
            if self.wants(path):
                node.kept = self._keep(path, entry.size, layer, tar)
            elif entry.mode & _EXECUTABLE and self._sniffs(path, entry.size):
                node.kept = self._keep_binary(path, entry.size, layer, tar)
        else:
            # Devices and FIFOs are recorded by name only; nothing reads them.
            self.tree.add(path, Node(kind, layer))

    def _sniffs(self, path: str, size: int) -> bool:
        return self.wants_executable is not None and size >= SNIFF_BYTES and self.wants_executable(path, size)

    def _keep_binary(self, path: str, size: int, layer: int, src: _Readable) -> KeptFile | None:
        head = src.read(SNIFF_BYTES)
        if not looks_like_binary(head):
            return None  # a script or data file: the tar reader skips the rest
        limits = self.limits
        if size > limits.max_binary_bytes or self.stats.kept_bytes + size > limits.max_kept_bytes:
            self.stats.warnings.append(
                f"{path}: binary of {size} bytes not read (max_binary_bytes {limits.max_binary_bytes}, "
                f"max_kept_bytes {limits.max_kept_bytes})"
            )
            return None
        # Not recorded in the tree's history: a binary's packages belong to the
        # layer that wrote it, and history entries make every deletion dearer.
        in_memory = _KEEP_BINARY_IN_MEMORY if self.inspect is None else _INSPECT_IN_MEMORY
        kept = self._keep(path, size, layer, _Prefixed(head, src), record=False, in_memory=in_memory)
        kept.executable = True
        if self.inspect is not None:
            kept.inspection = self.inspect(kept)
            kept.release()
            self.stats.kept_bytes -= size
        return kept

    def _keep(
        self,
        path: str,
        size: int,
        layer: int,
        src: _Readable,
        replace: bool = False,
        record: bool = True,
        in_memory: int = _KEEP_IN_MEMORY,
    ) -> KeptFile:
        limits = self.limits
        if size > limits.max_file_bytes:
            raise HostileContentError(
                f"{path} is {size} bytes, over the {limits.max_file_bytes}-byte limit for a read file"
            )
        if self.stats.kept_bytes + size > limits.max_kept_bytes:
            raise HostileContentError(f"files read from the image exceed {limits.max_kept_bytes} bytes (limit)")
        kept = KeptFile(path, size, layer, _workdir=self.workdir)
        if size <= in_memory:
            kept._data = src.read(size)
            if len(kept._data) != size:
                raise ImageFormatError(f"{path}: file data is truncated")
        else:
            kept._disk = self._copy_to_disk(src, size, path)
        self.stats.kept_files += 1
        self.stats.kept_bytes += size
        if replace:
            node = self.tree.get(path)
            if node is not None:
                node.kept = kept
            versions = self.tree.history.setdefault(path, [])
            versions[:] = [v for v in versions if v is None or v.layer != layer]
            versions.append(kept)
            versions.sort(key=lambda v: v.layer if v is not None else -1)
        elif record:
            self.tree.keep(kept)
        return kept

    def _copy_to_disk(self, src: _Readable, size: int, path: str) -> str:
        fd, name = _mkstemp(self.workdir)
        left = size
        with os.fdopen(fd, "wb") as out:
            while left:
                data = src.read(min(left, _OUT))
                if not data:
                    raise ImageFormatError(f"{path}: file data is truncated")
                out.write(data)
                left -= len(data)
        return name

    # -- root file systems on disk ----------------------------------------

    def apply_directory(self, root: Path, layer: Layer, only: set[str] | None = None) -> None:
        """Apply a directory tree as if it were one layer; links are not followed."""
        index = layer.index
        if only is not None:
            for path in only:
                self._keep_from_disk(os.path.join(root, path), path, index, replace=True)
            return
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                path = f"{rel_dir}/{name}" if rel_dir else name
                self._apply_disk_entry(full, path, index)
            # os.walk does not descend into symlinked directories by default.
        self.stats.layers += 1

    def _apply_disk_entry(self, full: str, path: str, layer: int) -> None:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            self.tree.add(path, Node("symlink", layer, link=os.readlink(full)))
        elif stat.S_ISDIR(st.st_mode):
            self.tree.add(path, Node("dir", layer))
        elif stat.S_ISREG(st.st_mode):
            node = Node("file", layer, st.st_size)
            self.tree.add(path, node)
            if self.wants(path):
                node.kept = self._keep_from_disk(full, path, layer)
            elif st.st_mode & _EXECUTABLE and self._sniffs(path, st.st_size):
                node.kept = self._binary_from_disk(full, path, layer)
        else:
            self.tree.add(path, Node("other", layer))

    def _binary_from_disk(self, full: str, path: str, layer: int) -> KeptFile | None:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src:
            return self._keep_binary(path, os.fstat(fd).st_size, layer, src)

    def _keep_from_disk(self, full: str, path: str, layer: int, replace: bool = False) -> KeptFile:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src:
            return self._keep(path, os.fstat(fd).st_size, layer, src, replace=replace)
