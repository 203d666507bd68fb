"""SBOM renderers, chosen with `?format=` as DRF's format suffix override."""

import json
from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer

from scans.engine import reports, sbom
from scans.engine.findings import Report
from scans.engine.models import Analysis


class _SbomRenderer(BaseRenderer):
    charset = "utf-8"

    def write(self, analysis: Analysis) -> str:
        raise NotImplementedError

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if not isinstance(data, Analysis):  # an error body, e.g. 404
            return json.dumps(data).encode()
        return self.write(data).encode()


class CycloneDXRenderer(_SbomRenderer):
    media_type = "application/vnd.cyclonedx+json"
    format = "cyclonedx"

    def write(self, analysis: Analysis) -> str:
        return sbom.to_cyclonedx(analysis)


class SpdxRenderer(_SbomRenderer):
    media_type = "application/spdx+json"
    format = "spdx"

    def write(self, analysis: Analysis) -> str:
        return sbom.to_spdx(analysis)


class VigilJsonRenderer(_SbomRenderer):
    media_type = "application/json"
    format = "json"

    def write(self, analysis: Analysis) -> str:
        return sbom.to_json(analysis)


class SbomNegotiation(DefaultContentNegotiation):
    """DRF answers an unknown `?format=` with a bare "Not found."; say which formats exist."""

    def filter_renderers(self, renderers: list[BaseRenderer], format: str) -> list[BaseRenderer]:  # noqa: A002
        found = [renderer for renderer in renderers if renderer.format == format]
        if not found:
            choices = ", ".join(r.format for r in renderers)
            raise NotFound(f"unknown format {format!r}; choose {choices}")
        return found


ReportNegotiation = SbomNegotiation


class _ReportRenderer(BaseRenderer):
    """Renders an engine Report with the CLI's report writers."""

    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if not isinstance(data, Report):  # an error body
            return json.dumps(data).encode()
        return reports.render_report(data, self.format).encode()


# format -> media type of each report writer the API serves besides paginated JSON.
REPORT_MEDIA_TYPES = {
    "cyclonedx": "application/vnd.cyclonedx+json",
    "sarif": "application/sarif+json",
    "junit": "application/xml",
    "markdown": "text/markdown",
    "html": "text/html",
    "table": "text/plain",
}
REPORT_FORMATS = tuple(REPORT_MEDIA_TYPES)
REPORT_RENDERERS = [
    type(f"{fmt.capitalize()}ReportRenderer", (_ReportRenderer,), {"format": fmt, "media_type": media_type})
    for fmt, media_type in REPORT_MEDIA_TYPES.items()
]
