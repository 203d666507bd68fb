"""The tar header reader agrees with Python's tarfile, and fails cleanly on garbage."""

from __future__ import annotations

import contextlib
import io
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.engine.tarstream import Entry, TarFormatError, TarReader


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.f = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self.f.read(n)

    def skip(self, n: int) -> None:
        self.f.seek(n, io.SEEK_CUR)


def ours(data: bytes) -> list[Entry]:
    reader = TarReader(_Bytes(data))
    entries = []
    for entry in reader:
        content = reader.read(entry.size) if entry.kind == "file" else b""
        entries.append((entry, content))
    return entries


_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "other",
    tarfile.FIFOTYPE: "other",
}

names = st.lists(
    st.text(alphabet="abcXYZ019._-é", min_size=1, max_size=40).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=6,
).map("/".join)
members = st.lists(
    st.tuples(
        names,
        st.sampled_from(list(_KINDS)),
        st.binary(max_size=1500),
        names,
        st.sampled_from([0o644, 0o755, 0o4750, 0o600, 0o001]),
    ),
    max_size=12,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(members, st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_same_entries_as_tarfile(items, fmt):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, kind, data, link, mode in items:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = mode
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = link
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                try:
                    tar.addfile(info)
                except ValueError:
                    return  # a name USTAR cannot hold
    data = out.getvalue()
    expected = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            content = tar.extractfile(m).read() if m.isreg() else b""
            mode = m.mode if m.isreg() else 0
            expected.append((Entry(m.name, _KINDS[m.type], m.size if m.isreg() else 0, m.linkname, mode), content))
    assert ours(data) == expected


@settings(max_examples=300)
@given(st.binary(max_size=4096))
def test_garbage_raises_only_tar_format_error(data):
    with contextlib.suppress(TarFormatError):
        ours(data)


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2047), st.integers(min_value=1, max_value=255))
def test_bit_flips_raise_only_tar_format_error(position, flip):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a/" + "long" * 40)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    data = bytearray(out.getvalue())
    data[position % len(data)] ^= flip
    with contextlib.suppress(TarFormatError):
        ours(bytes(data))
