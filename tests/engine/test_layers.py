"""The layer reader: whiteouts, links, limits and hostile layers."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from scans.engine.analyzer import Analyzer
from scans.engine.errors import AnalysisError, DigestMismatchError, HostileContentError, ImageFormatError, ParseError
from scans.engine.layers import BlobSpec, LayerReader, Limits, normalize
from scans.engine.models import Layer, Package, Platform
from scans.engine.sources import open_local
from tests.support.images import F, H, L, dev, layer_tar, oci_layout, sha256

STATUS = "var/lib/dpkg/status"


def dpkg_entry(name: str, version: str, source: str = "") -> str:
    src = f"Source: {source}\n" if source else ""
    return f"Package: {name}\nStatus: install ok installed\n{src}Version: {version}\nArchitecture: amd64\n\n"


def spec_for(tar: bytes, index: int = 0) -> BlobSpec:
    layer = Layer(index, sha256(tar), sha256(tar))
    return BlobSpec(layer, lambda: io.BytesIO(tar), None, verify_blob=True, verify_diff_id=True)


def read_layers(tmp_path: Path, *layers: list, wants=lambda p: True, limits: Limits | None = None) -> LayerReader:
    reader = LayerReader(wants, tmp_path, limits)
    for index, entries in enumerate(layers):
        reader.apply(spec_for(layer_tar(entries), index))
    return reader


def files(reader: LayerReader) -> set[str]:
    return {path for path, node in reader.tree.walk() if node.kind != "dir"}


def analyse(tmp_path: Path, *layers: list, **kwargs) -> object:
    layout = oci_layout(tmp_path / "image", list(layers), **kwargs)
    work = tmp_path / "work"
    work.mkdir()
    with open_local(str(layout), Platform()) as source:
        return Analyzer(work).run(source)


# -- whiteouts -----------------------------------------------------------------


def test_whiteout_removes_a_file_of_a_lower_layer(tmp_path):
    reader = read_layers(tmp_path, [F("a/b", "1"), F("a/c", "2")], [F("a/.wh.b")])
    assert files(reader) == {"a/c"}


def test_whiteout_of_a_directory_removes_everything_below_it(tmp_path):
    reader = read_layers(tmp_path, [F("a/b/c", "1"), F("a/b/d/e", "2"), F("a/x", "3")], [F("a/.wh.b")])
    assert files(reader) == {"a/x"}


def test_opaque_directory_hides_lower_layers_but_keeps_its_own_entries(tmp_path):
    reader = read_layers(
        tmp_path,
        [F("a/x", "1"), F("a/sub/y", "2"), F("keep", "3")],
        # The marker may come after entries of its own layer; those stay.
        [F("a/z", "4"), F("a/.wh..wh..opq"), F("a/sub/w", "5")],
    )
    assert files(reader) == {"a/z", "a/sub/w", "keep"}


def test_whiteout_does_not_remove_what_its_own_layer_adds(tmp_path):
    reader = read_layers(tmp_path, [F("a/b", "1")], [F("a/b", "2"), F("a/.wh.b")])
    assert files(reader) == {"a/b"}


def test_files_whited_out_are_not_catalogued(tmp_path):
    analysis = analyse(
        tmp_path,
        [F(STATUS, dpkg_entry("libfoo", "1.0")), F("etc/os-release", "ID=debian\nVERSION_ID=12\n")],
        [F("var/lib/dpkg/.wh.status")],
    )
    assert analysis.packages == []


# -- layer attribution -----------------------------------------------------------


def test_each_package_is_credited_to_the_layer_that_added_it(tmp_path):
    first = dpkg_entry("base", "1")
    analysis = analyse(
        tmp_path,
        [F(STATUS, first), F("etc/os-release", "ID=debian\nVERSION_ID=12\n")],
        [F(STATUS, first + dpkg_entry("app", "2"))],
        [F(STATUS, first + dpkg_entry("app", "3"))],  # upgraded: the upgrade's layer introduced 3
    )
    layers = {p.name: (p.version, p.layer.index) for p in analysis.packages}
    assert layers == {"base": ("1", 0), "app": ("3", 2)}


def test_a_package_removed_and_installed_again_is_credited_to_the_reinstall(tmp_path):
    pkg = dpkg_entry("tool", "1")
    analysis = analyse(
        tmp_path,
        [F(STATUS, pkg), F("etc/os-release", "ID=debian\nVERSION_ID=12\n")],
        [F("var/lib/dpkg/.wh.status")],
        [F(STATUS, pkg)],
    )
    assert [(p.name, p.layer.index) for p in analysis.packages] == [("tool", 2)]


# -- links -----------------------------------------------------------------------


def test_release_file_behind_a_relative_symlink(tmp_path):
    analysis = analyse(
        tmp_path,
        [L("etc/os-release", "../usr/lib/os-release"), F("usr/lib/os-release", 'ID=debian\nVERSION_ID="12"\n')],
    )
    assert (analysis.distro.id, analysis.distro.version_id) == ("debian", "12")


def test_database_behind_a_directory_symlink_is_read_in_a_second_pass(tmp_path):
    # `lib` -> `usr/lib` (merged /usr): the file's stored path is not the path the cataloger asks for.
    installed = "P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\n"
    analysis = analyse(
        tmp_path,
        [F("usr/lib/apk/db/installed", installed), F("etc/alpine-release", "3.20.3\n")],
        [L("lib", "usr/lib")],
    )
    assert [(p.name, p.version, p.path) for p in analysis.packages] == [
        ("musl", "1.2.5-r0", "usr/lib/apk/db/installed")
    ]
    assert analysis.packages[0].layer.index == 0


def test_absolute_symlinks_resolve_inside_the_image_root(tmp_path):
    reader = read_layers(tmp_path, [F("real/status", "x"), L("var/lib/dpkg/status", "/real/status")])
    path, node = reader.tree.resolve("var/lib/dpkg/status")
    assert path == "real/status"
    assert node.kept.read_bytes() == b"x"


def test_hard_links_resolve_to_their_target(tmp_path):
    reader = read_layers(tmp_path, [F("usr/lib/os-release", "ID=alpine\n"), H("etc/os-release", "usr/lib/os-release")])
    assert reader.tree.resolve("etc/os-release")[1].kept.read_bytes() == b"ID=alpine\n"


def test_symlink_loops_are_an_error_not_a_hang(tmp_path):
    reader = read_layers(tmp_path, [L("a", "b"), L("b", "a")])
    with pytest.raises(HostileContentError, match="too many levels"):
        reader.tree.resolve("a")


# -- hostile layers ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/evil", "a/../../evil", "/../evil"])
def test_path_traversal_member_fails_the_layer(tmp_path, name):
    with pytest.raises(HostileContentError, match="escapes the image root"):
        read_layers(tmp_path, [F(name, "owned")])
    assert not (tmp_path.parent / "evil").exists()


def test_hard_link_out_of_the_root_fails_the_layer(tmp_path):
    with pytest.raises(HostileContentError, match="escapes the image root"):
        read_layers(tmp_path, [H("etc/os-release", "../../../etc/passwd")])


def test_symlink_escape_fails_the_scan_with_a_reason(tmp_path):
    with pytest.raises(HostileContentError, match="escapes the image root"):
        analyse(tmp_path, [L(STATUS, "../../../../../../etc/passwd")])


def test_absolute_member_names_stay_inside_the_root(tmp_path):
    reader = read_layers(tmp_path, [F("/etc/alpine-release", "3.11.13\n")])
    assert files(reader) == {"etc/alpine-release"}


def test_device_files_are_recorded_but_never_read(tmp_path):
    analysis = analyse(tmp_path, [dev(STATUS), F("etc/os-release", "ID=debian\nVERSION_ID=12\n")])
    assert analysis.packages == []


def test_nothing_is_written_outside_the_work_dir(tmp_path):
    big = "x" * (5 << 20)  # over the in-memory threshold: spilled to the work dir
    work = tmp_path / "work"
    work.mkdir()
    reader = LayerReader(lambda p: True, work)
    reader.apply(spec_for(layer_tar([F("etc/big", big), F("/abs/file", "2")])))
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert all(name.startswith("kept-") for name in written)
    assert reader.tree.resolve("etc/big")[1].kept.read_bytes() == big.encode()


def test_gzip_bomb_is_stopped_by_the_ratio_limit(tmp_path):
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    header = tarfile.TarInfo("bomb")
    header.size = 200 << 20
    chunks = [zeros.compress(header.tobuf())]
    block = bytes(1 << 20)
    chunks += [zeros.compress(block) for _ in range(200)]
    blob = b"".join(chunks) + zeros.flush()
    layer = Layer(0, sha256(blob), "sha256:" + "0" * 64)
    reader = LayerReader(lambda p: False, tmp_path, Limits())
    with pytest.raises(HostileContentError, match="decompression bomb"):
        reader.apply(BlobSpec(layer, lambda: io.BytesIO(blob), "gzip"))


def test_layer_size_limit(tmp_path):
    tar = layer_tar([F("big", b"a" * (2 << 20))])
    reader = LayerReader(lambda p: False, tmp_path, Limits(max_layer_bytes=1 << 20))
    with pytest.raises(HostileContentError, match="more than 1048576 bytes"):
        reader.apply(spec_for(tar))


def test_entry_count_limit(tmp_path):
    tar = layer_tar([F(f"f{i}", "") for i in range(20)])
    reader = LayerReader(lambda p: False, tmp_path, Limits(max_entries=10))
    with pytest.raises(HostileContentError, match="more than 10 entries"):
        reader.apply(spec_for(tar))


def test_kept_file_size_limit(tmp_path):
    tar = layer_tar([F(STATUS, b"a" * 5000)])
    reader = LayerReader(lambda p: True, tmp_path, Limits(max_file_bytes=4096))
    with pytest.raises(HostileContentError, match="limit for a read file"):
        reader.apply(spec_for(tar))


def test_truncated_gzip_layer(tmp_path):
    image = oci_layout(tmp_path / "image", [[F(STATUS, dpkg_entry("a", "1") * 50)]])
    blob = max((tmp_path / "image" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[:-40])
    with pytest.raises((ImageFormatError, DigestMismatchError)), open_local(str(image), Platform()) as source:
        Analyzer(tmp_path).run(source)


def test_wrong_layer_digest(tmp_path):
    image = oci_layout(tmp_path / "image", [[F("etc/alpine-release", "3.20.3\n")]], compression="none")
    blob = max((tmp_path / "image" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF  # inside the file data: the tar still parses
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match="has digest"), open_local(str(image), Platform()) as source:
        Analyzer(tmp_path).run(source)


def test_garbage_in_the_middle_of_a_tar(tmp_path):
    tar = layer_tar([F("a", "1"), F("b", "2")])
    broken = tar[:1024] + b"\x01" * 512 + tar[1536:]
    with pytest.raises(ImageFormatError, match="corrupt tar"):
        LayerReader(lambda p: False, tmp_path).apply(spec_for(broken))


def test_unknown_layer_media_type(tmp_path):
    layout = oci_layout(tmp_path / "image", [[F("a", "1")]], layer_media_type="application/x-mystery")
    with pytest.raises(ImageFormatError, match="unknown media type"):
        open_local(str(layout), Platform())


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_every_layer_compression(tmp_path, compression):
    analysis = analyse(
        tmp_path,
        [
            F(STATUS, dpkg_entry("libc6", "2.36-9", "glibc (2.36-9+deb12u1)")),
            F("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        ],
        compression=compression,
    )
    (pkg,) = analysis.packages
    assert (pkg.source_name, pkg.source_version) == ("glibc", "2.36-9+deb12u1")
    assert pkg.purl == "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12"


def test_rootfs_directory_target(tmp_path):
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / STATUS).write_text(dpkg_entry("bash", "5.2"))
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    (root / "etc/passwd-link").symlink_to("/etc/passwd")  # never followed on the host
    work = tmp_path / "work"
    work.mkdir()
    with open_local(str(root), Platform()) as source:
        analysis = Analyzer(work).run(source)
    assert [p.purl for p in analysis.packages] == ["pkg:deb/debian/bash@5.2?arch=amd64&distro=debian-12"]


@pytest.mark.parametrize(
    ("name", "normal"),
    [("./a/b/", "a/b"), ("/a//b", "a/b"), ("a/./b/../c", "a/c"), ("", ""), (".", "")],
)
def test_normalize(name, normal):
    assert normalize(name) == normal


def test_analysis_errors_never_leak_other_exceptions(tmp_path):
    for blob in (b"\x1f\x8b" + os.urandom(100), b"\x28\xb5\x2f\xfd" + os.urandom(100), os.urandom(2048)):
        layer = Layer(0, sha256(blob), sha256(blob))
        reader = LayerReader(lambda p: True, tmp_path)
        with pytest.raises(AnalysisError):
            reader.apply(
                BlobSpec(layer, lambda blob=blob: io.BytesIO(blob), "auto", verify_blob=False, verify_diff_id=True)
            )


def test_layer_that_does_not_match_the_config_diff_id(tmp_path):
    # Blob digests all match their names; only the config's diff_id is a lie.
    layout = oci_layout(tmp_path / "image", [[F("etc/alpine-release", "3.20.3\n")]], compression="gzip")
    other = layer_tar([F("etc/alpine-release", "3.99.0\n")])
    blobs = tmp_path / "image" / "blobs" / "sha256"
    index = json.loads((tmp_path / "image" / "index.json").read_text())
    manifest_path = blobs / index["manifests"][0]["digest"][7:]
    manifest = json.loads(manifest_path.read_text())
    config_path = blobs / manifest["config"]["digest"][7:]
    config = json.loads(config_path.read_text())
    config["rootfs"]["diff_ids"] = [sha256(other)]
    raw_config = json.dumps(config).encode()
    (blobs / sha256(raw_config)[7:]).write_bytes(raw_config)
    manifest["config"] = {**manifest["config"], "digest": sha256(raw_config), "size": len(raw_config)}
    raw_manifest = json.dumps(manifest).encode()
    (blobs / sha256(raw_manifest)[7:]).write_bytes(raw_manifest)
    index["manifests"][0] = {**index["manifests"][0], "digest": sha256(raw_manifest), "size": len(raw_manifest)}
    (tmp_path / "image" / "index.json").write_text(json.dumps(index))
    with pytest.raises(DigestMismatchError, match="diff_id"), open_local(str(layout), Platform()) as source:
        Analyzer(tmp_path).run(source)


# -- binaries: executables sniffed by their first bytes --------------------------------------------------

ELF = b"\x7fELF\x02\x01\x01" + bytes(57) + b"rest of the binary" * 100
SCRIPT = b"#!/bin/sh\necho not a binary\n"


def sniffing(tmp_path: Path, *layers: list, wants_executable=lambda p, s: True, **kwargs) -> LayerReader:
    reader = LayerReader(lambda p: False, tmp_path, kwargs.pop("limits", None), wants_executable, **kwargs)
    for index, entries in enumerate(layers):
        reader.apply(spec_for(layer_tar(entries), index))
    return reader


def kept(reader: LayerReader) -> dict[str, bytes]:
    return {path: node.kept.read_bytes() for path, node in reader.tree.walk() if node.kept is not None}


def test_an_executable_binary_anywhere_is_kept_whole(tmp_path):
    reader = sniffing(tmp_path, [F("opt/tools/anything", ELF, mode=0o755), F("after", "x", mode=0o644)])
    assert kept(reader) == {"opt/tools/anything": ELF}
    assert reader.tree.get("opt/tools/anything").kept.executable
    assert reader.tree.get("after").size == 1  # the stream stayed aligned after the sniff


@pytest.mark.parametrize(
    "head", [b"MZ\x90\x00", b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xce", b"\xca\xfe\xba\xbe", b"\x7fELF"]
)
def test_pe_and_mach_o_are_binaries_too(tmp_path, head):
    reader = sniffing(tmp_path, [F("bin/tool", head + b"x" * 100, mode=0o700)])
    assert kept(reader) == {"bin/tool": head + b"x" * 100}


@pytest.mark.parametrize(
    ("data", "mode"),
    [
        (SCRIPT, 0o755),  # executable, but not a binary
        (ELF, 0o644),  # a binary without an executable bit (a shared library, say)
        (b"\x7fEL", 0o755),  # too short to tell
        (b"", 0o755),
    ],
)
def test_other_files_are_skipped_after_at_most_a_few_bytes(tmp_path, data, mode):
    reader = sniffing(tmp_path, [F("usr/bin/x", data, mode=mode), F("usr/bin/y", ELF, mode=0o111)])
    assert kept(reader) == {"usr/bin/y": ELF}


def test_any_executable_bit_counts(tmp_path):
    reader = sniffing(tmp_path, *[[F(f"bin/{oct(mode)}", ELF, mode=mode)] for mode in (0o100, 0o010, 0o001, 0o4750)])
    assert set(kept(reader)) == {"bin/0o100", "bin/0o10", "bin/0o1", "bin/0o4750"}


def test_wants_executable_decides_before_any_byte_is_read(tmp_path):
    asked = []

    def wants_executable(path: str, size: int) -> bool:
        asked.append((path, size))
        return path.startswith("usr/local/")

    reader = sniffing(
        tmp_path,
        [F("usr/bin/cat", ELF, mode=0o755), F("usr/local/bin/tool", ELF, mode=0o755), F("etc/conf", "x")],
        wants_executable=wants_executable,
    )
    assert kept(reader) == {"usr/local/bin/tool": ELF}
    assert asked == [("usr/bin/cat", len(ELF)), ("usr/local/bin/tool", len(ELF))]  # never for non-executables


def test_without_a_binary_cataloger_nothing_is_sniffed(tmp_path):
    reader = LayerReader(lambda p: False, tmp_path)
    reader.apply(spec_for(layer_tar([F("bin/tool", ELF, mode=0o755)])))
    assert kept(reader) == {}


def test_a_wanted_executable_is_kept_as_wanted_not_as_a_binary(tmp_path):
    reader = LayerReader(lambda p: p == "bin/tool", tmp_path, None, lambda p, s: True)
    reader.apply(spec_for(layer_tar([F("bin/tool", ELF, mode=0o755)])))
    assert not reader.tree.get("bin/tool").kept.executable


def test_binary_size_limit_skips_with_a_warning(tmp_path):
    big = ELF + bytes(5000)
    reader = sniffing(
        tmp_path, [F("bin/big", big, mode=0o755), F("bin/small", ELF, mode=0o755)], limits=Limits(max_binary_bytes=4096)
    )
    assert kept(reader) == {"bin/small": ELF}
    limits = f"max_binary_bytes 4096, max_kept_bytes {Limits().max_kept_bytes}"
    assert reader.stats.warnings == [f"bin/big: binary of {len(big)} bytes not read ({limits})"]


def test_binaries_over_the_kept_bytes_budget_are_skipped_not_failed(tmp_path):
    reader = sniffing(
        tmp_path,
        [F("bin/a", ELF, mode=0o755), F("bin/b", ELF, mode=0o755)],
        limits=Limits(max_kept_bytes=len(ELF) + 10),
    )
    assert set(kept(reader)) == {"bin/a"}
    assert len(reader.stats.warnings) == 1


def test_large_binaries_spill_to_the_work_dir(tmp_path):
    big = ELF + bytes(200 << 10)
    reader = sniffing(tmp_path, [F("bin/big", big, mode=0o755)])
    node = reader.tree.get("bin/big")
    assert node.kept._data is None
    assert Path(node.kept.local_path()).parent == tmp_path
    assert node.kept.read_bytes() == big


def test_inspect_sees_the_bytes_which_are_then_dropped(tmp_path):
    seen = {}

    def inspect(file):
        seen[file.path] = file.read_bytes()
        return len(seen[file.path])

    big = ELF + bytes(20 << 20)  # over the in-memory size: read from the work dir, which is cleaned
    reader = sniffing(tmp_path, [F("bin/small", ELF, mode=0o755), F("bin/big", big, mode=0o755)], inspect=inspect)
    assert seen == {"bin/small": ELF, "bin/big": big}
    assert {p: n.kept.inspection for p, n in reader.tree.walk() if n.kept} == {
        "bin/small": len(ELF),
        "bin/big": len(big),
    }
    assert all(n.kept._data is None and n.kept._disk is None for _, n in reader.tree.walk() if n.kept)
    assert list(tmp_path.iterdir()) == []
    assert reader.stats.kept_bytes == 0


def test_binaries_replaced_or_deleted_by_later_layers_are_gone(tmp_path):
    reader = sniffing(
        tmp_path,
        [F("bin/a", ELF, mode=0o755), F("bin/b", ELF, mode=0o755), F("bin/c", ELF, mode=0o755)],
        [F("bin/.wh.a"), F("bin/b", SCRIPT, mode=0o755)],
    )
    assert kept(reader) == {"bin/c": ELF}
    assert reader.tree.history == {}  # binaries are not versioned like package databases


def test_binaries_in_a_rootfs_directory(tmp_path):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(ELF)
    (root / "usr/bin/tool").chmod(0o755)
    (root / "usr/bin/data").write_bytes(ELF)
    (root / "usr/bin/data").chmod(0o644)
    (root / "usr/bin/script").write_bytes(SCRIPT)
    (root / "usr/bin/script").chmod(0o755)
    (root / "usr/bin/link").symlink_to("tool")
    work = tmp_path / "work"
    work.mkdir()
    reader = LayerReader(lambda p: False, work, None, lambda p, s: True)
    reader.apply_directory(root, Layer(0, "", ""))
    assert kept(reader) == {"usr/bin/tool": ELF}


class _BinaryCataloger:
    """Reports one package per ELF binary it is shown, named after the file."""

    name = "fake-binaries"
    version = 1

    def wants(self, path: str) -> bool:
        return False

    def wants_executable(self, path: str, size: int) -> bool:
        return not path.startswith("skip/")

    def parse(self, file):
        data = file.read_bytes()
        if b"broken" in data:
            raise ParseError(f"{file.path}: broken")
        return [Package("generic", file.path.rsplit("/", 1)[-1], str(len(data)), path=file.path)]


def test_analyzer_catalogues_binaries_of_the_final_tree_with_their_layer(tmp_path):
    layout = oci_layout(
        tmp_path / "image",
        [
            [F("bin/a", ELF, mode=0o755), F("bin/gone", ELF, mode=0o755), F("skip/c", ELF, mode=0o755)],
            [F("bin/.wh.gone"), F("opt/b", ELF + b"!", mode=0o755), F("opt/bad", ELF + b"broken", mode=0o755),
             L("bin/link", "../opt/b")],
        ],
    )  # fmt: skip
    (tmp_path / "work").mkdir()
    with open_local(str(layout), Platform()) as source:
        analysis = Analyzer(tmp_path / "work", catalogers=[_BinaryCataloger()]).run(source)
    assert [(p.name, p.version, p.path, p.layer.index) for p in analysis.packages] == [
        ("a", str(len(ELF)), "bin/a", 0),
        ("b", str(len(ELF) + 1), "opt/b", 1),
    ]
    assert analysis.warnings == ["fake-binaries: opt/bad: broken"]
    assert list((tmp_path / "work").iterdir()) == []  # no binary left behind in the work dir
