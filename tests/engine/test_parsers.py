"""Parsers of untrusted bytes fail only with their own errors, and read what real files hold."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from scans.engine import distro, manifests
from scans.engine.catalogers.apk import ApkCataloger
from scans.engine.catalogers.dpkg import DpkgCataloger
from scans.engine.errors import ImageFormatError, ParseError
from scans.engine.models import Platform


@dataclass
class Blob:
    data: bytes
    path: str = "var/lib/dpkg/status"

    @property
    def size(self) -> int:
        return len(self.data)

    def read_bytes(self) -> bytes:
        return self.data


text_lines = st.lists(
    st.one_of(
        st.sampled_from(["Package: a", "Version: 1", "Status: install ok installed", "Source: b (2)", "P:x", "V:1"]),
        st.text(max_size=40),
    ),
    max_size=30,
).map("\n".join)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=2048), text_lines.map(str.encode)))
def test_dpkg_and_apk_parsers_raise_only_parse_error(data):
    for cataloger in (DpkgCataloger(), ApkCataloger()):
        try:
            for package in cataloger.parse(Blob(data)):
                assert package.name
                assert package.version
        except ParseError:
            pass


@settings(max_examples=300)
@given(st.binary(max_size=1024))
def test_release_files_never_crash(data):
    for path in distro.RELEASE_FILES:
        distro.detect(lambda p, path=path: data if p == path else None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=512), json_values.map(lambda v: __import__("json").dumps(v).encode())))
def test_manifest_parsers_raise_only_image_format_error(raw):
    for parse in (manifests.parse_index, manifests.parse_manifest, manifests.parse_config, manifests.media_type_of):
        with contextlib.suppress(ImageFormatError):
            parse(raw)


def test_dpkg_status_fields():
    status = (
        b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9+deb12u1)\n"
        b"Version: 2.36-9+deb12u4\n\n"
        b"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\n"
        b"Version: 1:1.2.13.dfsg-1\n\n"
        b"Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n"
        b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n"
    )
    rows = [(p.name, p.version, p.source_name, p.source_version) for p in DpkgCataloger().parse(Blob(status))]
    assert rows == [
        ("libc6", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u1"),
        ("zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1"),
        ("bash", "5.2.15-2+b2", "bash", "5.2.15-2+b2"),
    ]


def test_distroless_status_d_is_recognised(tmp_path):
    from scans.engine.analyzer import Analyzer
    from scans.engine.sources import open_local
    from tests.support.images import F, oci_layout

    one = "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n"
    layout = oci_layout(
        tmp_path / "image",
        [
            [
                F("var/lib/dpkg/status.d/base-files", one),
                F("var/lib/dpkg/status.d/base-files.md5sums", "d41d8cd98f00b204e9800998ecf8427e  etc/issue\n"),
                F(
                    "var/lib/dpkg/status.d/tzdata",
                    one.replace("base-files", "tzdata").replace("12.4+deb12u5", "2024a-0"),
                ),
                F("etc/os-release", 'PRETTY_NAME="Distroless"\nID=debian\nVERSION_ID="12"\n'),
            ]
        ],
    )
    work = tmp_path / "work"
    work.mkdir()
    with open_local(str(layout), Platform()) as source:
        analysis = Analyzer(work).run(source)
    assert analysis.distro.variant == "distroless"
    assert [(p.name, p.path) for p in analysis.packages] == [
        ("base-files", "var/lib/dpkg/status.d/base-files"),
        ("tzdata", "var/lib/dpkg/status.d/tzdata"),
    ]
    assert analysis.packages[0].purl == "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"


def test_release_file_fallbacks():
    def only(path, text):
        return lambda p: text.encode() if p == path else None

    assert distro.detect(only("etc/centos-release", "CentOS Linux release 7.9.2009 (Core)\n")).version_id == "7.9.2009"
    assert distro.detect(only("etc/redhat-release", "Red Hat Enterprise Linux release 8.8 (Ootpa)")).id == "rhel"
    assert distro.detect(only("etc/debian_version", "12.15\n")).version_id == "12"
    assert distro.detect(only("etc/debian_version", "trixie/sid\n")).codename == "trixie"
    assert distro.detect(only("etc/alpine-release", "3.20.3\n")).version_id == "3.20.3"
    assert distro.detect(lambda p: None) is None
