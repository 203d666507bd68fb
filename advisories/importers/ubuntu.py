"""Ubuntu's OSV data: Ubuntu CVE records (UBUNTU-CVE-*) and security notices (USN-*).

Canonical publishes them in canonical/ubuntu-security-notices (`osv/cve/`,
`osv/usn/`) and as one tarball on security-metadata.canonical.com; both are
read by the OSV parser (advisories.importers.osv), which knows Ubuntu's
ecosystems and priorities:

- `Ubuntu:22.04:LTS` and `Ubuntu:25.10` are releases 22.04 and 25.10.
- `Ubuntu:Pro:16.04:LTS` (ESM) is release 16.04 too: an image of 16.04 is
  affected until it takes the fix from ESM. The purl keeps the ESM pocket
  (`distro=esm-infra/xenial`).
- FIPS, Realtime and other Pro streams ship their own builds; their release
  carries the stream (`20.04:fips-updates`), so they never match an ordinary
  image.
- The Ubuntu priority becomes a vendor severity and each package's severity:
  a CVE record's own, or for a USN the highest of the CVEs it fixes.
- Status is `fixed` when a fix is listed, else `affected`: Ubuntu's OSV lists
  needed, deferred and ignored alike, and leaves out not-affected packages.

Livepatch notices (LSN-*) are not read: they patch running kernels, which
container images do not carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from advisories.importers.base import Document, Item
from advisories.importers.osv import parse_document

_RECORD_NAME = re.compile(r"(?:USN|UBUNTU-CVE)-[^/]+\.json")


class UbuntuImporter:
    source = "ubuntu"
    default_url = "https://security-metadata.canonical.com/osv/osv-all.tar.xz"

    def accepts(self, name: str) -> bool:
        """USN and Ubuntu CVE records, wherever the archive keeps them; not its VEX or OVAL files."""
        return _RECORD_NAME.fullmatch(name.rsplit("/", 1)[-1]) is not None

    def parse(self, document: Document) -> Iterator[Item]:
        yield parse_document(document, self.source)
