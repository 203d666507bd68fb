from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from scans.engine.sbom import MAX_SBOM_BYTES


class RawDocumentParser(BaseParser):
    """The request body as bytes, for documents the engine parses itself (SBOMs); reads are bounded."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        data = bytes(stream.read(MAX_SBOM_BYTES + 1)) if stream is not None else b""
        if len(data) > MAX_SBOM_BYTES:
            raise ParseError(f"the document is larger than {MAX_SBOM_BYTES} bytes")
        return data
