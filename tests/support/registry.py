"""A real docker-registry (distribution 2.8) for tests, and skopeo to push to it.

Nothing here is mocked: `start_registry` runs Debian's `docker-registry`
binary on a loopback port with filesystem storage in the test's work dir.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.token_server import TokenAuthConfig

REGISTRY_BINARY = "/usr/bin/docker-registry"
STARTUP_TIMEOUT = 10.0
CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def tools_missing() -> str:
    """Why registry tests cannot run here, or '' when they can."""
    missing = [tool for tool in (REGISTRY_BINARY, "skopeo", "htpasswd") if shutil.which(tool) is None]
    return f"needs {', '.join(missing)} (Debian packages docker-registry, skopeo, apache2-utils)" if missing else ""


def _free_port() -> int:
    # The port is closed again before the registry binds it; a clash is
    # possible but rare on loopback, and startup then fails loudly.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningRegistry:
    host: str  # 127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> RunningRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _htpasswd_file(workdir: Path, username: str, password: str) -> Path:
    # -B: bcrypt is the only hash docker-registry's htpasswd backend accepts.
    line = subprocess.run(
        ["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True
    ).stdout.strip()
    path = workdir / "htpasswd"
    path.write_text(line + "\n")
    return path


def registry_config(
    workdir: Path,
    port: int,
    *,
    htpasswd: tuple[str, str] | None = None,
    token_auth: TokenAuthConfig | None = None,
    notify_url: str | None = None,
    notify_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "vigil-test-registry"},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "vigil-test", "path": str(_htpasswd_file(workdir, *htpasswd))}}
    elif token_auth is not None:
        config["auth"] = {
            "token": {
                "realm": token_auth.realm,
                "service": token_auth.service,
                "issuer": token_auth.issuer,
                "rootcertbundle": str(token_auth.rootcertbundle),
            }
        }
    if notify_url is not None:
        config["notifications"] = {
            "endpoints": [
                {
                    "name": "vigil",
                    "url": notify_url,
                    # The registry sends each header with a list of values.
                    "headers": {name: [value] for name, value in (notify_headers or {}).items()},
                    "timeout": "2s",
                    "threshold": 3,
                    "backoff": "1s",
                    "ignoredmediatypes": ["application/octet-stream"],
                }
            ]
        }
    return config


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - a loopback http URL we built
            return True
    except urllib.error.HTTPError:
        return True  # 401 from an auth-enabled registry still means it is up
    except OSError:
        return False


def start_registry(
    workdir: Path,
    *,
    htpasswd: tuple[str, str] | None = None,
    token_auth: TokenAuthConfig | None = None,
    notify_url: str | None = None,
    notify_headers: dict[str, str] | None = None,
) -> RunningRegistry:
    """Start docker-registry on a free loopback port; use as a context manager or call `.stop()`."""
    if htpasswd is not None and token_auth is not None:
        raise ValueError("a registry has either htpasswd or token auth, not both")
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config_path = workdir / "config.yml"
    # JSON is YAML, and needs no YAML library.
    config = registry_config(
        workdir, port, htpasswd=htpasswd, token_auth=token_auth, notify_url=notify_url, notify_headers=notify_headers
    )
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments we built
            [REGISTRY_BINARY, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
    registry = RunningRegistry(f"127.0.0.1:{port}", process, log_path, config_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _answers(f"{registry.url}/v2/"):
            return registry
        time.sleep(0.05)
    registry.stop()
    print(f"docker-registry did not start; config {config_path}; log:\n{registry.log()}")  # noqa: T201
    raise RuntimeError(f"docker-registry did not answer on {registry.host} (exit code {process.returncode})")


def skopeo_push(source: str, dest_ref: str, *, creds: tuple[str, str] | None = None, all_images: bool = False) -> str:
    """Copy `source` (e.g. `docker-archive:/x.tar`, `oci:/dir:tag`) to `docker://dest_ref`; returns the manifest digest.

    `all_images` keeps an image index and every image in it (`skopeo copy --all`).
    """
    with tempfile.TemporaryDirectory(prefix="vigil-skopeo-") as tmp:
        digest_file = Path(tmp) / "digest"
        command = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--digestfile", str(digest_file)]
        if creds is not None:
            command += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
        if all_images:
            command.append("--all")
        command += [source, f"docker://{dest_ref}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - argument list
        if result.returncode != 0:
            raise RuntimeError(f"skopeo copy {source} -> {dest_ref} failed:\n{result.stderr}")
        return digest_file.read_text().strip()


def write_multiarch_layout(dest: Path, amd64_archive: Path, arm64_archive: Path, *, tag: str = "multi") -> str:
    """An OCI layout at `dest` whose `tag` is an image index of linux/amd64 and linux/arm64/v8.

    The amd64 image is `amd64_archive` unchanged; the arm64 one is `arm64_archive`
    with its config relabelled (the corpus holds amd64 images only, and the
    architecture in the index and config is all a platform choice looks at).
    Returns the index digest.
    """
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    amd64 = _unpack_oci_archive(amd64_archive, dest)
    arm64_manifest = _relabel(dest, _unpack_oci_archive(arm64_archive, dest), "arm64", "v8")
    entries = [
        {**amd64, "platform": {"architecture": "amd64", "os": "linux"}},
        {**arm64_manifest, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ]
    entries = [{k: v for k, v in entry.items() if k != "annotations"} for entry in entries]
    index = _write_blob(dest, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode())
    top = {"mediaType": OCI_INDEX, **index, "annotations": {"org.opencontainers.image.ref.name": tag}}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return str(index["digest"])


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _read_blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _unpack_oci_archive(archive: Path, layout: Path) -> dict[str, Any]:
    """Copy the blobs of an OCI archive into `layout`; returns its only manifest descriptor."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("blobs/sha256/"):
                target = layout / "blobs" / "sha256" / Path(member.name).name
                target.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    manifests: list[dict[str, Any]] = index["manifests"]
    return manifests[0]


def _relabel(layout: Path, manifest_descriptor: dict[str, Any], architecture: str, variant: str) -> dict[str, Any]:
    manifest = json.loads(_read_blob(layout, manifest_descriptor["digest"]))
    config = json.loads(_read_blob(layout, manifest["config"]["digest"]))
    config["architecture"] = architecture
    config["variant"] = variant
    manifest["config"] = {**manifest["config"], **_write_blob(layout, json.dumps(config).encode())}
    return {"mediaType": OCI_MANIFEST, **_write_blob(layout, json.dumps(manifest).encode())}
