"""Inventories of the real images in ../shared/corpus against the package managers' own tools.

Each image is unpacked here with GNU tar (whiteouts applied by a few lines
of independent code) and the package database is read back with
`dpkg-query --admindir` or `rpm --dbpath`; the engine must report exactly
what they report. No apk tool runs on Debian, so apk databases are checked
against an awk reading of the same file.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from scans.engine.analyzer import Analyzer
from scans.engine.models import Analysis, Platform
from scans.engine.purls import OS_TYPES
from scans.engine.sources import open_local
from tests.conftest import corpus_file

IMAGES = {
    "debian12-app": ["debian12-app.docker.tar"],
    "alpine37": ["alpine37.docker.tar", "alpine37.oci.tar"],
    "alpine311": ["alpine311.docker.tar", "alpine311.oci.tar"],
    "alpine320": ["alpine320.docker.tar", "alpine320.oci.tar"],
    "rpm-rhel8-bdb": ["rpm-rhel8-bdb.docker.tar", "rpm-rhel8-bdb.oci.tar"],
    "rpm-amzn2023": ["rpm-amzn2023.docker.tar", "rpm-amzn2023.oci.tar"],
}
ARCHIVES = [archive for archives in IMAGES.values() for archive in archives]


def analyse(archive: Path, tmp_path: Path) -> Analysis:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    with open_local(str(archive), Platform()) as source:
        return Analyzer(work).run(source)


# -- an independent unpacker for the reference tools ----------------------------


def _layer_names(outer: tarfile.TarFile) -> list[str]:
    names = outer.getnames()
    if "manifest.json" in names and "oci-layout" not in names:
        return json.load(outer.extractfile("manifest.json"))[0]["Layers"]
    index = json.load(outer.extractfile("index.json"))
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.load(outer.extractfile(f"blobs/sha256/{digest}"))
    return [f"blobs/sha256/{layer['digest'].split(':')[1]}" for layer in manifest["layers"]]


def unpack(archive: Path, root: Path) -> Path:
    root.mkdir()
    with tarfile.open(archive) as outer:
        for name in _layer_names(outer):
            blob = outer.extractfile(name).read()
            if blob[:2] == b"\x1f\x8b":
                blob = gzip.decompress(blob)
            listing = subprocess.run(["tar", "-t", "-f", "-"], input=blob, capture_output=True, check=True)
            for member in listing.stdout.decode().splitlines():
                base = member.rstrip("/").rsplit("/", 1)[-1]
                parent = root / member.rstrip("/").rpartition("/")[0]
                if base == ".wh..wh..opq":
                    for child in parent.iterdir():
                        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
                elif base.startswith(".wh."):
                    gone = parent / base[4:]
                    if gone.is_dir() and not gone.is_symlink():
                        shutil.rmtree(gone)
                    elif gone.exists() or gone.is_symlink():
                        gone.unlink()
            subprocess.run(
                ["tar", "-x", "-f", "-", "-C", str(root), "--exclude=*/.wh.*", "--exclude=.wh.*", "--no-same-owner"],
                input=blob,
                check=True,
            )
    return root


# -- references ---------------------------------------------------------------------


def dpkg_reference(root: Path) -> set[tuple[str, ...]]:
    fmt = "${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\t${db:Status-Status}\n"
    out = subprocess.run(
        ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", f"-f={fmt}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {tuple(r[:5]) for r in rows if r[5] not in ("not-installed", "config-files")}


def rpm_reference(root: Path) -> set[tuple[str, ...]]:
    if not shutil.which("rpm"):
        pytest.skip("rpm is not installed (apt-get install rpm)")
    dbpath = root / "var/lib/rpm"
    backend = "sqlite" if (dbpath / "rpmdb.sqlite").exists() else "bdb_ro"
    fmt = "%{NAME}\t%{EPOCHNUM}\t%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n"
    out = subprocess.run(
        ["rpm", "--dbpath", str(dbpath), "--define", f"_db_backend {backend}", "-qa", "--qf", fmt],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # gpg-pubkey entries are imported signing keys, not packages; Vigil skips them.
    return {tuple(line.split("\t")) for line in out.splitlines() if not line.startswith("gpg-pubkey\t")}


def apk_reference(root: Path) -> set[tuple[str, ...]]:
    script = (
        "/^P:/{p=substr($0,3)} /^V:/{v=substr($0,3)} /^A:/{a=substr($0,3)} /^o:/{o=substr($0,3)} "
        '/^$/{if(p)print p"\\t"v"\\t"a"\\t"o; p=""} END{if(p)print p"\\t"v"\\t"a"\\t"o}'
    )
    out = subprocess.run(
        ["awk", script, str(root / "lib/apk/db/installed")], capture_output=True, text=True, check=True
    )
    return {tuple(line.split("\t")) for line in out.stdout.splitlines()}


def engine_rows(analysis: Analysis, kind: str) -> set[tuple[str, ...]]:
    packages = [p for p in analysis.packages if p.type == kind]
    if kind == "deb":
        return {(p.name, p.version, p.arch, p.source_name, p.source_version) for p in packages}
    if kind == "rpm":
        return {
            (p.name, str(p.epoch or 0), p.version, p.arch, f"{p.source_name}-{p.source_version}.src.rpm")
            for p in packages
        }
    return {(p.name, p.version, p.arch, p.source_name) for p in packages}


REFERENCES = {"deb": dpkg_reference, "rpm": rpm_reference, "apk": apk_reference}
KIND = {
    "debian12-app": "deb",
    "alpine37": "apk",
    "alpine311": "apk",
    "alpine320": "apk",
    "rpm-rhel8-bdb": "rpm",
    "rpm-amzn2023": "rpm",
}


@pytest.mark.parametrize("archive", ARCHIVES)
def test_inventory_equals_the_package_managers_own_listing(archive, tmp_path):
    path = corpus_file(archive)
    name = archive.split(".")[0]
    kind = KIND[name]
    analysis = analyse(path, tmp_path)
    expected = REFERENCES[kind](unpack(path, tmp_path / "root"))
    assert expected, "the reference tool listed nothing"
    assert engine_rows(analysis, kind) == expected
    assert {p.type for p in analysis.packages if p.type in OS_TYPES} == {kind}
    assert analysis.warnings == []


@pytest.mark.parametrize("name", [n for n, archives in IMAGES.items() if len(archives) == 2])
def test_both_archive_formats_give_the_same_inventory(name, tmp_path):
    results = []
    for archive in IMAGES[name]:
        (tmp_path / archive).mkdir()
        results.append(analyse(corpus_file(archive), tmp_path / archive))
    docker, oci = results
    assert [p.purl for p in docker.packages] == [p.purl for p in oci.packages]
    assert docker.distro == oci.distro


def test_debian12_app_whiteouts_and_layers(tmp_path):
    analysis = analyse(corpus_file("debian12-app.docker.tar"), tmp_path)
    assert analysis.distro.id == "debian"
    assert analysis.distro.version_id == "12"
    assert len(analysis.image.layers) == 5
    assert {p.layer.index for p in analysis.packages if p.type == "deb"} == {0}  # the debootstrap layer
    # Each application layer's ecosystem is credited to it (corpus README: layers 2, 3, 4).
    assert {p.type: p.layer.index for p in analysis.packages if p.type != "deb"} == {
        "pypi": 1,
        "npm": 2,
        "maven": 3,
        "golang": 3,
    }
    libc = next(p for p in analysis.packages if p.name == "libc6")
    assert libc.source_name == "glibc"
    assert libc.purl.startswith("pkg:deb/debian/libc6@")
    assert libc.purl.endswith("?arch=amd64&distro=debian-12")


def test_debian12_app_files_whited_out_are_absent(tmp_path):
    from scans.engine.layers import LayerReader

    site = "usr/local/lib/python3.11/site-packages"
    with open_local(str(corpus_file("debian12-app.docker.tar")), Platform()) as source:
        reader = LayerReader(lambda p: False, tmp_path)
        for spec in source.blobs:
            reader.apply(spec)
    tree = reader.tree
    assert tree.get(f"{site}/flask") is None
    assert tree.get(f"{site}/Flask-1.1.2.dist-info") is None
    assert tree.get(f"{site}/bin/flask") is None
    assert tree.get(f"{site}/django") is not None
    assert tree.get(f"{site}/werkzeug") is not None
    # And GNU tar plus the reference whiteout code agree on what remains.
    root = unpack(corpus_file("debian12-app.docker.tar"), tmp_path / "root")
    assert not (root / site / "flask").exists()
    assert (root / site / "django").is_dir()


@pytest.mark.parametrize(
    ("archive", "purl"),
    [
        ("alpine311.oci.tar", "pkg:apk/alpine/musl@1.1.24-r3?arch=x86_64&distro=3.11.13"),
        ("rpm-rhel8-bdb.oci.tar", "pkg:rpm/rhel/libuuid@2.32.1-42.el8_8?arch=x86_64&distro=rhel-8.8&epoch=0"),
    ],
)
def test_purls_carry_the_distro(archive, purl, tmp_path):
    analysis = analyse(corpus_file(archive), tmp_path)
    assert purl in {p.purl for p in analysis.packages}
