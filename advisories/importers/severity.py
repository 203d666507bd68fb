"""CVSS vectors to base scores and ratings, with the `cvss` library."""

from __future__ import annotations

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from advisories.importers.base import RecordError, SeverityScore, SeverityType

# CVSS v2 defines no qualitative rating; NVD's bands are the usual ones.
_V2_BANDS = ((7.0, "HIGH"), (4.0, "MEDIUM"), (0.0, "LOW"))


def _v2_rating(score: float) -> str:
    return next(rating for floor, rating in _V2_BANDS if score >= floor)


def cvss_severity(vector: str, source: str) -> SeverityScore:
    """A SeverityScore for a CVSS v2, v3.x or v4.0 vector; RecordError when it is malformed."""
    vector = vector.strip()
    try:
        if vector.startswith("CVSS:4."):
            v4 = CVSS4(vector)
            return SeverityScore(SeverityType.CVSS_V4, source, vector, float(v4.base_score), str(v4.severity).upper())
        if vector.startswith("CVSS:3."):
            v3 = CVSS3(vector)
            score = float(v3.scores()[0])
            return SeverityScore(SeverityType.CVSS_V3, source, vector, score, str(v3.severities()[0]).upper())
        v2 = CVSS2(vector.removeprefix("(").removesuffix(")"))
        score = float(v2.scores()[0])
        return SeverityScore(SeverityType.CVSS_V2, source, vector, score, _v2_rating(score))
    except (CVSSError, ValueError, KeyError, IndexError) as exc:
        raise RecordError(f"malformed CVSS vector {vector!r} ({exc})") from None


def vendor_severity(rating: str, source: str) -> SeverityScore:
    return SeverityScore(SeverityType.VENDOR, source, rating=rating.strip())
