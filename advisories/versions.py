"""Version ordering per ecosystem, on univers, fixed where univers disagrees with the ecosystem's own tool.

`version_class(ecosystem)` gives the univers `Version` subclass for an OSV
ecosystem name; `parse` builds one (ValueError when the string is not a
version of that scheme) and `compare` orders two strings.

univers is right for most schemes. Where it disagrees with the reference
implementation (dpkg, rpm, apk-tools, SemVer 2.0, Maven, Composer) the class
below wraps it and says what is wrong; tests/advisories/test_versions.py names
each failing case. Nothing in site-packages is patched.

Django-free, like the importers: the matcher uses it in pure functions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from univers import debian as univers_debian
from univers import rpm as univers_rpm
from univers import versions as uv
from univers.nuget import InvalidNuGetVersion

# univers is untyped; these typed names keep mypy --strict honest about what we get back
_debian_compare: Callable[[Any, Any], int] = univers_debian.compare_versions
_debian_is_valid: Callable[[str], Any] = univers_debian.Version.is_valid
_rpmvercmp: Callable[[str, str], int] = univers_rpm.vercmp
_univers_normalize: Callable[[str], str] = uv.Version.normalize  # drops spaces and a leading "v"

_ASCII_VERSION = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: every scheme here is ASCII


class _Ordered:
    """Mixin: the six comparisons and the hash of a univers Version, all from one `_cmp` and one `_key`.

    univers' `Version` compares through attrs on `value`: `==` is the value's
    `__eq__` and `<` goes through tuple comparison, so when the value's `__eq__`
    disagrees with its ordering (Debian "1.0" vs "1.00", SemVer build
    metadata) a pair ends up neither <, == nor >. Subclasses define `_cmp`
    (-1/0/1) and `_key` (equal for versions that compare equal). Put it first
    among the bases so that it wins over univers' attrs-made methods.
    """

    value: Any
    string: str

    def _cmp(self, other: Any) -> int:
        raise NotImplementedError

    def _key(self) -> object:
        raise NotImplementedError

    def _same_scheme(self, other: object) -> bool:
        return type(other) is type(self)

    def __eq__(self, other: object) -> bool:
        if not self._same_scheme(other):
            return NotImplemented
        return self._cmp(other) == 0

    def __ne__(self, other: object) -> bool:
        if not self._same_scheme(other):
            return NotImplemented
        return self._cmp(other) != 0

    def __lt__(self, other: object) -> bool:
        if not self._same_scheme(other):
            return NotImplemented
        return self._cmp(other) < 0

    def __le__(self, other: object) -> bool:
        if not self._same_scheme(other):
            return NotImplemented
        return self._cmp(other) <= 0

    def __gt__(self, other: object) -> bool:
        if not self._same_scheme(other):
            return NotImplemented
        return self._cmp(other) > 0

    def __ge__(self, other: object) -> bool:
        if not self._same_scheme(other):
            return NotImplemented
        return self._cmp(other) >= 0

    def __hash__(self) -> int:
        return hash(self._key())

    @classmethod
    def normalize(cls, string: str) -> str:
        return string  # univers strips a leading "v", which is part of an rpm version and not of a dpkg or apk one

    def __str__(self) -> str:
        return self.string


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


# --- dpkg ---------------------------------------------------------------------------------------------------------

_DPKG_PARTS = re.compile(r"(\D*)(\d*)")


def _dpkg_canonical(part: str) -> tuple[tuple[str, int], ...]:
    """(non-digits, number) pairs as dpkg's verrevcmp walks them; trailing ("", 0) pairs compare as absent."""
    pairs = [(m.group(1), int(m.group(2) or 0)) for m in _DPKG_PARTS.finditer(part) if m.group(0)]
    while pairs and pairs[-1] == ("", 0):
        pairs.pop()
    return tuple(pairs)


class DpkgVersion(_Ordered, uv.DebianVersion):
    """Debian policy versions, ordered by univers' port of dpkg's algorithm.

    Fixes: univers' DebianVersion answers `==` by comparing the parsed
    (epoch, upstream, revision) strings, so dpkg-equal versions written
    differently ("1.0" and "1.00", "1.0" and "1.0-0") are neither <, == nor >
    (or == without equal hashes). Also rejects non-ASCII digits, which
    univers' validating regex lets through.
    """

    @classmethod
    def is_valid(cls, string: str) -> bool:
        return bool(_ASCII_VERSION.fullmatch(string)) and bool(_debian_is_valid(string))

    def _cmp(self, other: Any) -> int:
        return _debian_compare(self.value, other.value)

    def _key(self) -> object:
        v = self.value
        return v.epoch, _dpkg_canonical(v.upstream), _dpkg_canonical(v.revision or "0")


# --- rpm ----------------------------------------------------------------------------------------------------------

_RPM_SEGMENT = re.compile(r"[A-Za-z0-9._+~^]+")  # what rpmbuild accepts in Version and Release
_RPM_VERSION = re.compile(r"[A-Za-z0-9._+~^][A-Za-z0-9._+~^-]*")  # rpmbuild refuses a '-' here, rpm reads past it
_RPM_TOKENS = re.compile(r"[0-9]+|[A-Za-z]+|~|\^")


class Evr(NamedTuple):
    epoch: int
    version: str
    release: str | None  # None when the string has no "-release": rpm orders it before every release


def parse_evr(string: str) -> Evr:
    """[epoch:]version[-release] the way rpm 4.18 splits it (rpmver.c parseEVR): release after the LAST '-'."""
    head, colon, rest = string.partition(":")
    if colon and head.isdigit():
        epoch, string = int(head), rest
    elif colon and not head:
        epoch, string = 0, rest  # rpm reads an empty epoch as 0
    else:
        epoch = 0
    version, dash, release = string.rpartition("-")
    if not dash:
        version, release = release, ""
    if not _RPM_VERSION.fullmatch(version) or (dash and not _RPM_SEGMENT.fullmatch(release)):
        raise ValueError(f"{string!r} is not an rpm [epoch:]version[-release]")
    return Evr(epoch, version, release if dash else None)


def _rpm_tokens(segment: str) -> tuple[str, ...]:
    # rpmvercmp skips separators and compares numbers without their leading zeros
    return tuple(t.lstrip("0") if t[0].isdigit() else t for t in _RPM_TOKENS.findall(segment))


class RpmVersion(_Ordered, uv.RpmVersion):
    """rpm EVRs, ordered like rpm 4.18's rpmverCmp; segments compared with univers' rpmvercmp port.

    Fixes two univers bugs in splitting [epoch:]version[-release]: univers
    splits at the first '-', rpm at the last ("1.0-2-1" is version 1.0-2,
    release 1); and univers treats a missing release as "", while rpm orders a
    missing release before every release ("1.0" < "1.0-~1", which univers
    has the other way round). An empty epoch (":1.0") is 0, as in rpm.
    """

    @classmethod
    def is_valid(cls, string: str) -> bool:
        try:
            parse_evr(string)
        except ValueError:
            return False
        return True

    @classmethod
    def build_value(cls, string: str) -> Evr:
        return parse_evr(string)

    def _cmp(self, other: Any) -> int:
        a: Evr = self.value
        b: Evr = other.value
        if a.epoch != b.epoch:
            return _sign(a.epoch - b.epoch)
        result = _rpmvercmp(a.version, b.version)
        if result or a.release == b.release:
            return result
        if a.release is None or b.release is None:
            return -1 if a.release is None else 1
        return _rpmvercmp(a.release, b.release)

    def _key(self) -> object:
        v: Evr = self.value
        return v.epoch, _rpm_tokens(v.version), None if v.release is None else _rpm_tokens(v.release)


# --- apk ----------------------------------------------------------------------------------------------------------

# Token kinds in the order apk-tools' src/version.c gives them; the order matters at the end of a comparison.
_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _COMMIT_HASH, _REVISION, _END = range(8)
# Suffixes: pre-release ones sort before the bare version (NONE), post-release ones after it.
_APK_SUFFIXES = {"alpha": 1, "beta": 2, "pre": 3, "rc": 4, "cvs": 6, "svn": 7, "git": 8, "hg": 9, "p": 10}
_APK_SUFFIX_NONE = 5
_APK_TOKEN = re.compile(
    r"(?P<dot>\.\d+)|(?P<letter>[a-z])|_(?P<suffix>[a-z]+)|(?P<suffix_no>\d+)|~(?P<hash>[0-9a-f]+)|-r(?P<revision>\d+)"
)
# Which token kinds may follow a token of each kind (version.c token_next).
_APK_FOLLOWS = {
    "dot": (_INITIAL, _DIGIT),
    "letter": (_INITIAL, _DIGIT),
    "suffix": (_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO),
    "suffix_no": (_SUFFIX,),
    "hash": (_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO),
    "revision": (_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _COMMIT_HASH),
}
_APK_KIND = {"dot": _DIGIT, "letter": _LETTER, "suffix": _SUFFIX, "suffix_no": _SUFFIX_NO, "hash": _COMMIT_HASH,
             "revision": _REVISION}  # fmt: skip


class ApkToken(NamedTuple):
    kind: int
    text: str  # digits, the letter, the suffix name or the commit hash


def apk_tokens(string: str) -> tuple[ApkToken, ...]:
    """digits{.digits}[letter]{_suffix[digits]}[~hash][-rN], per apk-tools' version.c; ValueError otherwise."""
    initial = re.match(r"\d+", string)
    if not initial:
        raise ValueError(f"{string!r} is not an apk version: it must start with a digit")
    tokens = [ApkToken(_INITIAL, initial.group())]
    pos = initial.end()
    while pos < len(string):
        m = _APK_TOKEN.match(string, pos)
        name = m.lastgroup if m else None
        if m is None or name is None or tokens[-1].kind not in _APK_FOLLOWS[name]:
            raise ValueError(f"{string!r} is not an apk version (at {string[pos:]!r})")
        text = m.group(name).lstrip(".")
        if name == "suffix" and text not in _APK_SUFFIXES:
            raise ValueError(f"{string!r} is not an apk version: unknown suffix _{text}")
        tokens.append(ApkToken(_APK_KIND[name], text))
        pos = m.end()
    return tuple(tokens)


def _apk_token_cmp(a: ApkToken, b: ApkToken) -> int:
    if a.kind == _DIGIT and (a.text[0] == "0" or b.text[0] == "0"):
        return _sign((a.text > b.text) - (a.text < b.text))  # a leading zero sorts as a string (Gentoo's rule)
    if a.kind in (_INITIAL, _DIGIT, _SUFFIX_NO, _REVISION):
        return _sign(int(a.text) - int(b.text))
    if a.kind == _SUFFIX:
        return _sign(_APK_SUFFIXES[a.text] - _APK_SUFFIXES[b.text])
    return _sign((a.text > b.text) - (a.text < b.text))  # letter, commit hash


def apk_compare(a: tuple[ApkToken, ...], b: tuple[ApkToken, ...]) -> int:
    """apk_version_compare: token by token while the kinds agree; then the version that stops first is the older,
    unless the other goes on with a pre-release suffix."""
    n = 0
    for ta, tb in zip(a, b, strict=False):
        if ta.kind != tb.kind:
            break
        result = _apk_token_cmp(ta, tb)
        if result:
            return result
        n += 1
    next_a = a[n] if n < len(a) else None
    next_b = b[n] if n < len(b) else None
    kind_a = _END if next_a is None else next_a.kind
    kind_b = _END if next_b is None else next_b.kind
    if kind_a == kind_b:
        return 0
    if _is_pre_release(next_a):
        return -1
    if _is_pre_release(next_b):
        return 1
    return -1 if kind_a > kind_b else 1


def _is_pre_release(token: ApkToken | None) -> bool:
    return token is not None and token.kind == _SUFFIX and _APK_SUFFIXES[token.text] < _APK_SUFFIX_NONE


class ApkVersion(_Ordered, uv.AlpineLinuxVersion):
    """Alpine, Wolfi and Chainguard package versions, ordered by the rules of apk-tools' src/version.c.

    univers' AlpineLinuxVersion is Gentoo's algorithm, and apk is not Gentoo:
    it rejects the post-release suffixes _cvs, _svn, _git and _hg (real Wolfi
    and Alpine versions such as 1.2.4_git20230717-r5), the ~commit-hash part,
    and versions whose first number has a leading zero ("021109-r3"); it
    accepts upper-case letters and ignores trailing zeros in zero-led
    components ("1.0" == "1.00"), where apk compares such components as strings.
    """

    @classmethod
    def is_valid(cls, string: str) -> bool:
        try:
            apk_tokens(string)
        except ValueError:
            return False
        return True

    @classmethod
    def build_value(cls, string: str) -> tuple[ApkToken, ...]:
        return apk_tokens(string)

    def _cmp(self, other: Any) -> int:
        return apk_compare(self.value, other.value)

    def _key(self) -> object:
        return tuple((t.kind, t.text if t.kind in (_LETTER, _SUFFIX, _COMMIT_HASH, _DIGIT) else int(t.text))
                     for t in self.value)  # fmt: skip


# --- SemVer (npm, Go, crates.io, ...) -----------------------------------------------------------------------------

_SEMVER = re.compile(
    r"v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*)(?:\.(?P<patch>0|[1-9]\d*))?)?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


class SemverKey(NamedTuple):
    major: int
    minor: int
    patch: int
    release: int  # 0 for a pre-release, 1 for the release itself, which sorts after its pre-releases
    pre: tuple[tuple[int, int, str], ...]  # numeric identifiers sort before alphanumeric ones


def semver_key(string: str) -> SemverKey:
    """SemVer 2.0 precedence (build metadata ignored), as npm's semver and Go's x/mod/semver order versions.

    "1" and "1.2" are read as 1.0.0 and 1.2.0 (OSV's "introduced: 0" among them).
    """
    m = _SEMVER.fullmatch(string)
    if not m or (m.group("pre") and any(_leading_zero(p) for p in m.group("pre").split("."))):
        raise ValueError(f"{string!r} is not a SemVer 2.0 version")
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in (m.group("pre") or "").split(".") if p)
    return SemverKey(int(m.group("major")), int(m.group("minor") or 0), int(m.group("patch") or 0), 0 if pre else 1,
                     pre)  # fmt: skip


def _leading_zero(identifier: str) -> bool:
    return identifier.isdigit() and len(identifier) > 1 and identifier[0] == "0"


class _SemverOrdered(_Ordered):
    @classmethod
    def is_valid(cls, string: str) -> bool:
        try:
            semver_key(string)
        except ValueError:
            return False
        return True

    @classmethod
    def build_value(cls, string: str) -> SemverKey:
        return semver_key(string)

    def _cmp(self, other: Any) -> int:
        a: SemverKey = self.value
        b: SemverKey = other.value
        return (a > b) - (a < b)

    def _key(self) -> object:
        return self.value


class SemverVersion(_SemverOrdered, uv.SemverVersion):
    """Strict SemVer 2.0 (npm, crates.io, ...); `value` is the precedence key.

    Fixes: univers' SemverVersion adds build metadata to the precedence
    (against SemVer 2.0 section 10 and npm), so "1.0.0+a" and "1.0.0+b" are
    neither <, == nor >; and it coerces non-SemVer strings ("1.2.3.4" becomes
    1.2.3+4, "01.2.3" becomes 1.2.3) instead of refusing them.
    """


class GoVersion(_SemverOrdered, uv.GolangVersion):
    """Go module versions: SemVer with a "v"; pseudo-versions are pre-releases, "+incompatible" is build metadata.

    Fix: as for SemverVersion; univers orders "v2.0.0+incompatible" neither
    <, == nor > "v2.0.0", where Go's x/mod/semver says equal.
    """


# --- Maven --------------------------------------------------------------------------------------------------------

# ComparableVersion's qualifiers, oldest first; "" is the release itself. Unknown ones sort after all of these.
_MAVEN_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_MAVEN_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_MAVEN_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}  # only when a digit follows: "a1" is alpha-1
_MAVEN_RELEASE = str(_MAVEN_QUALIFIERS.index(""))
MavenItem = int | str | list[Any]  # a number, a qualifier, or a sub-list (what follows a '-')


def _maven_qualifier_order(qualifier: str) -> str:
    """comparableQualifier: known qualifiers by rank, unknown ones after them in lexical order."""
    if qualifier in _MAVEN_QUALIFIERS:
        return str(_MAVEN_QUALIFIERS.index(qualifier))
    return f"{len(_MAVEN_QUALIFIERS)}-{qualifier}"


def _maven_is_null(item: MavenItem) -> bool:
    if isinstance(item, int):
        return item == 0
    if isinstance(item, str):
        return _maven_qualifier_order(item) == _MAVEN_RELEASE
    return not item


def _maven_normalize(items: list[Any]) -> None:
    """Drop trailing "null" items (0, "", empty lists), looking past non-null sub-lists: 1.0-x is 1-x."""
    for i in range(len(items) - 1, -1, -1):
        if _maven_is_null(items[i]):
            del items[i]
        elif not isinstance(items[i], list):
            break


def _maven_item(digits: bool, text: str, followed_by_digit: bool = False) -> MavenItem:
    if digits:
        return int(text)
    if followed_by_digit and len(text) == 1:
        text = _MAVEN_SHORT.get(text, text)
    return _MAVEN_ALIASES.get(text, text)


class _MavenParser:
    """ComparableVersion.parseVersion of Maven 3.8: '.' separates, '-' and letter/digit changes open sub-lists,
    and a qualifier after a dot is read as after a hyphen (MNG-7644)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.current = self.items
        self.stack = [self.items]

    def switch(self, digits: bool, text: str) -> None:
        """Letters then a digit ("rc1"), or digits then a letter ("1rc"): each run is its own item."""
        if not digits and self.current:
            self.nest()  # MNG-7644 again: "1.0.rc1" is "1.0-rc-1"
        self.current.append(_maven_item(digits, text, followed_by_digit=not digits))
        self.nest()

    def nest(self) -> None:
        child: list[Any] = []
        self.current.append(child)
        self.current = child
        self.stack.append(child)

    def parse(self, version: str) -> list[Any]:
        version = version.lower()
        digits, start = False, 0
        for i, c in enumerate(version):
            if c in ".-":
                self.current.append(0 if i == start else _maven_item(digits, version[start:i]))
                start = i + 1
                if c == "-":
                    self.nest()
            elif c.isdigit() != digits and i > start:
                self.switch(digits, version[start:i])
                start = i
            digits = c.isdigit() if c not in ".-" else digits
        if len(version) > start:
            if not digits and self.current:
                self.nest()  # 1.0.0.X1 < 1.0.0-X2: a trailing .X is read as -X
            self.current.append(_maven_item(digits, version[start:]))
        while self.stack:
            _maven_normalize(self.stack.pop())
        return self.items


def maven_compare(a: MavenItem, b: MavenItem | None) -> int:
    """Item.compareTo of ComparableVersion; `b` None stands for a missing item (the other version ended)."""
    if isinstance(a, int):
        if b is None:
            return 0 if a == 0 else 1
        return _sign(a - b) if isinstance(b, int) else 1  # a number beats a qualifier and a sub-list
    if isinstance(a, str):
        if b is None or isinstance(b, str):
            x, y = _maven_qualifier_order(a), _maven_qualifier_order(b) if b is not None else _MAVEN_RELEASE
            return (x > y) - (x < y)
        return -1
    if b is None:  # every item against nothing, not just the first (MNG-6964)
        return next((r for r in (maven_compare(item, None) for item in a) if r), 0)
    if not isinstance(b, list):
        return -1 if isinstance(b, int) else 1
    for left, right in itertools.zip_longest(a, b):
        result = -maven_compare(right, None) if left is None else maven_compare(left, right)
        if result:
            return result
    return 0


class MavenVersion(_Ordered, uv.MavenVersion):
    """Maven versions, ordered like Maven 3.8's ComparableVersion; `value` is its item list.

    univers' port is of an older ComparableVersion, and differs from Maven 3.8:
    - it lacks the alias "release" ("3.0.0.RELEASE" == "3.0.0" in Maven; the
      Spring versions in GitHub's advisories are written that way);
    - it lacks MNG-7644 ("1.0.alpha" == "1.0-alpha"), which also leaves its
      order intransitive: "0" < "0.sp" < "0.0.alpha" < "0";
    - it hashes the unparsed string, so "1.0" == "1" with different hashes.

    Maven 3.8 itself is not transitive everywhere (0 > 0.alpha-SNAPSHOT > 0.sp
    > 0): this class answers as Maven does, pair by pair.
    """

    @classmethod
    def normalize(cls, string: str) -> str:
        return _univers_normalize(string)

    @classmethod
    def is_valid(cls, string: str) -> bool:
        return bool(string)

    @classmethod
    def build_value(cls, string: str) -> list[Any]:
        return _MavenParser().parse(string)

    def _cmp(self, other: Any) -> int:
        return maven_compare(self.value, other.value)

    def _key(self) -> object:
        return tuple(itertools.takewhile(lambda item: isinstance(item, int), self.value))  # a coarse hash is fine


# --- Composer (Packagist) -----------------------------------------------------------------------------------------

_COMPOSER = re.compile(
    r"v?(?P<numbers>\d+(?:\.\d+){0,3})"
    r"(?:[._-]?(?P<stability>stable|beta|b|rc|alpha|a|patch|pl|p)(?P<stability_no>(?:[.-]?\d+)*))?"
    r"(?P<dev>[.-]?dev)?",
    re.IGNORECASE,
)
_COMPOSER_STABILITY = {"a": "alpha", "b": "beta", "p": "patch", "pl": "patch", "rc": "RC", "stable": ""}
# PHP's version_compare: special words, and "#" for a number
_PHP_SPECIAL = (("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2), ("RC", 3), ("rc", 3), ("#", 4), ("pl", 5),
                ("p", 5))  # fmt: skip


def composer_normalize(string: str) -> str:
    """Composer's VersionParser::normalize for numbered versions: four numbers, then the stability ("1.0-beta1" ->
    "1.0.0.0-beta1"). Branch names ("dev-main") and dates are not versions here."""
    m = _COMPOSER.fullmatch(string.strip())
    if not m:
        raise ValueError(f"{string!r} is not a Composer version")
    numbers = m.group("numbers").split(".")
    normalized = ".".join(numbers + ["0"] * (4 - len(numbers)))
    stability = (m.group("stability") or "").lower()
    stability = _COMPOSER_STABILITY.get(stability, stability)
    if stability:
        normalized += f"-{stability}{m.group('stability_no').lstrip('.-')}"
    if m.group("dev"):
        normalized += "-dev"
    return normalized


def _php_canonical(version: str) -> list[str]:
    """php_canonicalize_version: '-', '_', '+' and any non-alphanumeric become '.', and '.' goes between letters and
    digits; then split on '.'."""
    out = []
    for i, c in enumerate(version):
        if not c.isalnum():
            out.append(".")
            continue
        if i and version[i - 1].isalnum() and version[i - 1].isdigit() != c.isdigit():
            out.append(".")
        out.append(c)
    return [p for p in "".join(out).split(".") if p]


def _php_special(part: str) -> int:
    return next((order for name, order in _PHP_SPECIAL if part.startswith(name)), -6)


def _php_part_cmp(a: str, b: str) -> int:
    if a.isdigit() and b.isdigit():
        return _sign(int(a) - int(b))
    return _sign(_php_special("#" if a.isdigit() else a) - _php_special("#" if b.isdigit() else b))


def php_version_compare(a: str, b: str) -> int:
    """PHP's version_compare(), which Composer's Comparator applies to normalized versions."""
    pa, pb = _php_canonical(a), _php_canonical(b)
    for x, y in zip(pa, pb, strict=False):
        result = _php_part_cmp(x, y)
        if result:
            return result
    if len(pa) > len(pb):
        rest = pa[len(pb)]
        return 1 if rest.isdigit() else _php_part_cmp(rest, "#")
    if len(pb) > len(pa):
        rest = pb[len(pa)]
        return -1 if rest.isdigit() else _php_part_cmp("#", rest)
    return 0


class ComposerVersion(_Ordered, uv.ComposerVersion):
    """Composer versions: normalized like Composer, ordered with PHP's version_compare.

    Fixes: univers' ComposerVersion is SemVer after coercion, so "1.0-beta1"
    sorts after "1.0-RC1" (ASCII 'R' < 'b'; Composer puts beta before RC) and
    "1.0.0.0" vs "1.0.0" is neither <, == nor > (build metadata again).
    """

    @classmethod
    def is_valid(cls, string: str) -> bool:
        try:
            composer_normalize(string)
        except ValueError:
            return False
        return True

    @classmethod
    def build_value(cls, string: str) -> str:
        return composer_normalize(string)

    def _cmp(self, other: Any) -> int:
        return php_version_compare(self.value, other.value)

    def _key(self) -> object:
        parts = _php_canonical(self.value)
        while parts and parts[-1] == "0":
            parts.pop()  # a hash may merge unequal versions, never split equal ones
        return tuple(str(int(p)) if p.isdigit() else _php_special(p) for p in parts)


# --- NuGet --------------------------------------------------------------------------------------------------------


class NugetVersion(_Ordered, uv.NugetVersion):
    """NuGet versions as univers orders them.

    Fix: univers hashes build metadata that its comparison ignores, so
    "1.0.0" == "1.0.0+meta" with different hashes.
    """

    @classmethod
    def normalize(cls, string: str) -> str:
        return _univers_normalize(string)

    def _cmp(self, other: Any) -> int:
        a, b = self.value, other.value
        return 0 if a == b else -1 if a < b else 1

    def _key(self) -> object:
        base = self.value._base_semver  # univers keeps these private; the key ignores build metadata like __eq__
        return base.major, base.minor, base.patch, base.prerelease, self.value._revision


# --- the table ----------------------------------------------------------------------------------------------------

_RPM_ECOSYSTEMS = ("Red Hat", "Rocky Linux", "AlmaLinux", "Amazon Linux", "Oracle Linux", "SUSE", "openSUSE")

VERSION_CLASSES: dict[str, type[uv.Version]] = {
    "PyPI": uv.PypiVersion,
    "npm": SemverVersion,
    "Go": GoVersion,
    "Maven": MavenVersion,
    "crates.io": SemverVersion,
    "RubyGems": uv.RubygemsVersion,
    "NuGet": NugetVersion,
    "Packagist": ComposerVersion,
    "Hex": SemverVersion,  # Elixir's Version is SemVer 2.0
    "Pub": SemverVersion,
    "SwiftURL": SemverVersion,
    "GitHub Actions": SemverVersion,
    "Kubernetes": SemverVersion,
    "Debian": DpkgVersion,
    "Ubuntu": DpkgVersion,
    "Alpine": ApkVersion,
    "Wolfi": ApkVersion,
    "Chainguard": ApkVersion,
    **dict.fromkeys(_RPM_ECOSYSTEMS, RpmVersion),
}


def version_class(ecosystem: str) -> type[uv.Version]:
    """The univers Version class for an OSV ecosystem ("Debian" or "Debian:12"); ValueError if unknown."""
    try:
        return VERSION_CLASSES[ecosystem.split(":", 1)[0]]
    except KeyError:
        raise ValueError(f"no version scheme for ecosystem {ecosystem!r}") from None


def parse(ecosystem: str, version: str) -> uv.Version:
    """A comparable version; ValueError when `version` is not one in the ecosystem's scheme."""
    cls = version_class(ecosystem)
    if not isinstance(version, str) or not _ASCII_VERSION.fullmatch(version):
        raise ValueError(f"{version!r} is not a {ecosystem} version")
    try:
        return cls(version)
    except (ValueError, TypeError, LookupError, ArithmeticError, AttributeError, InvalidNuGetVersion) as exc:
        # univers raises InvalidVersion for most bad strings, but some parsers fail with their own errors
        # (NuGet's InvalidNuGetVersion is a bare Exception: hypothesis found it with ":")
        raise ValueError(f"{version!r} is not a {ecosystem} version ({exc})") from None


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is older than, the same as, or newer than `b`; ValueError for a string that is not a
    version of the ecosystem's scheme."""
    return cmp_versions(parse(ecosystem, a), parse(ecosystem, b))


def cmp_versions(a: uv.Version, b: uv.Version) -> int:
    if a == b:
        return 0
    return -1 if a < b else 1


def sort_key(ecosystem: str) -> Callable[[str], uv.Version]:
    """A key for sorted(): sorted(strings, key=sort_key("Debian"))."""
    return lambda version: parse(ecosystem, version)
