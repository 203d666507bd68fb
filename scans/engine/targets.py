"""One entry point for every kind of scan target.

A target is a docker archive, an OCI archive or layout, a root file system
directory, or a registry reference. Transport prefixes as skopeo writes them
(`docker-archive:`, `oci-archive:`, `oci:`, `dir:`, `docker://`) force a kind.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from scans.engine.analyzer import Analyzer
from scans.engine.errors import ImageFormatError, RegistryError
from scans.engine.layers import Limits
from scans.engine.models import Analysis, Platform
from scans.engine.registry.auth import Credentials, find_credentials
from scans.engine.registry.client import RegistryClient
from scans.engine.registry.pull import pull_image
from scans.engine.registry.reference import parse_reference
from scans.engine.sources import ImageSource, open_local

DEFAULT_MAX_BLOB_BYTES = 8 << 30
_LOCAL_PREFIXES = ("docker-archive:", "oci-archive:", "oci:", "dir:")
_REGISTRY_PREFIXES = ("docker://", "registry:")


def _strip_prefix(target: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if target.startswith(prefix):
            return target[len(prefix) :]
    return None


def pull_from_registry(
    client: RegistryClient,
    repository: str,
    reference: str,
    workdir: Path,
    platform: Platform,
    *,
    max_blob_size: int = DEFAULT_MAX_BLOB_BYTES,
    display: str = "",
) -> ImageSource:
    """Pull into `workdir` (every blob verified on the way in) and open the layout."""
    layout = workdir / "layout"
    pulled = pull_image(client, repository, reference, layout, platform, max_blob_size=max_blob_size)
    # Digests were checked while downloading; reading them again would only cost time.
    source = open_local(str(pulled.layout_dir), platform, verify_blobs=False)
    # The blobs are not needed once the source is closed; free the disk early.
    source.on_close(shutil.rmtree, pulled.layout_dir, ignore_errors=True)
    tag = "" if reference.startswith("sha256:") else reference
    source.meta = dataclasses.replace(
        source.meta,
        reference=display or f"{client.host}/{repository}@{pulled.top_digest}",
        repo_tags=(f"{client.host}/{repository}:{tag}",) if tag else (),
    )
    return source


def open_target(
    target: str,
    workdir: Path,
    platform: Platform,
    *,
    credentials: Credentials | None = None,
    insecure: bool = False,
    max_blob_size: int = DEFAULT_MAX_BLOB_BYTES,
) -> ImageSource:
    local = _strip_prefix(target, _LOCAL_PREFIXES)
    if local is not None or (_strip_prefix(target, _REGISTRY_PREFIXES) is None and Path(target).exists()):
        return open_local(local if local is not None else target, platform)
    text = _strip_prefix(target, _REGISTRY_PREFIXES) or target
    try:
        ref = parse_reference(text)
    except ValueError as exc:
        raise ImageFormatError(f"{target!r} is not a file, a directory or an image reference ({exc})") from None
    if credentials is None:
        try:
            credentials = find_credentials(ref.registry, ref.repository)
        except ValueError as exc:
            raise ImageFormatError(str(exc)) from None
    try:
        client = RegistryClient(ref.registry, credentials=credentials, insecure=insecure)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    return pull_from_registry(
        client, ref.repository, ref.reference, workdir, platform, max_blob_size=max_blob_size, display=str(ref)
    )


def scan(
    target: str,
    *,
    platform: Platform | None = None,
    workdir: Path | None = None,
    limits: Limits | None = None,
    credentials: Credentials | None = None,
    insecure: bool = False,
) -> Analysis:
    """Analyse `target` in a private work dir (made and removed here unless given)."""
    platform = platform or Platform()
    with tempfile.TemporaryDirectory(prefix="vigil-", dir=workdir) as tmp:
        work = Path(tmp)
        with open_target(target, work, platform, credentials=credentials, insecure=insecure) as source:
            return Analyzer(work, limits=limits).run(source)
