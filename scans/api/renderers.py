"""SBOM renderers, chosen with `?format=` as DRF's format suffix override."""

import json
from typing import Any

from rest_framework.renderers import BaseRenderer

from scans.engine import sbom
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
