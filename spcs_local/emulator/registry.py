"""The image registry: Debian's `docker-registry` (the Distribution registry), and what it holds.

`make local-up` runs it on a free port of 127.0.0.1 with the config `config()` writes, storage under
.local/registry. Docker and `snow` reach it through its door in the emulator (`registry_front`), over HTTPS at
the repository URLs' host, which wants a login as an account's registry does (`snow spcs image-registry login`).
`Registry` reads and deletes what was pushed, through the registry's own HTTP API (v2), behind the door.
"""

import json
import shutil
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from spcs_local.emulator.catalog import Image

MANIFESTS = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
PROGRAM = "docker-registry"
INSTALL_HINT = (
    "The local SPCS keeps images in Debian's docker-registry package: `apt-get install docker-registry` "
    "(make local-up does so where apt is available); elsewhere, put the Distribution registry's `registry` "
    "binary on PATH as docker-registry."
)


def config(storage: Path, port: int) -> str:
    """The registry's own config: loopback only, storage of ours, deletes allowed (DROP IMAGE REPOSITORY),
    and relative URLs in its answers, which go out through its door at another address."""
    return json.dumps(
        {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage.resolve())}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "relativeurls": True},
        },
        indent=1,
    )


def command(config_file: Path) -> list[str]:
    program = shutil.which(PROGRAM)
    if program is None:
        raise FileNotFoundError(INSTALL_HINT)
    return [program, "serve", str(config_file)]


class Registry:
    def __init__(self, address: str, upstream: str | None = None) -> None:
        self.address = address  # host:port, as image tags name it
        self.upstream = upstream or address  # host:port where the registry itself answers, behind its door

    def request(self, method: str, path: str, accept: str = "application/json") -> tuple[int, dict, bytes]:
        url = f"http://{self.upstream}/v2/{path}"
        request = urllib.request.Request(url, method=method, headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), b""

    def exists(self, path: str, tag: str) -> bool:
        status, _, _ = self.request("HEAD", f"{path}/manifests/{tag}", MANIFESTS)
        return status == 200

    def repositories(self) -> list[str]:
        """Every image name in the registry, page by page (the registry caps a page at 1000)."""
        names, page = [], "_catalog?n=1000"
        while page:
            _, headers, body = self.request("GET", page)
            names += json.loads(body or b"{}").get("repositories") or []
            link = headers.get("Link", "")  # </v2/_catalog?last=...&n=1000>; rel="next"
            page = link[link.index("/v2/") + 4 : link.index(">")] if 'rel="next"' in link else ""
        return names

    def images(self, path: str) -> list[Image]:
        names = [name for name in self.repositories() if name.startswith(f"{path}/")]
        found = []
        for name in sorted(names):
            _, _, body = self.request("GET", f"{name}/tags/list")
            for tag in sorted(json.loads(body or b"{}").get("tags") or []):
                status, headers, manifest = self.request("GET", f"{name}/manifests/{tag}", MANIFESTS)
                if status == 200:
                    digest = headers.get("Docker-Content-Digest", "")
                    found.append(Image(name.removeprefix(f"{path}/"), tag, digest, self.created(name, manifest)))
        return found

    def created(self, name: str, manifest: bytes) -> datetime | None:
        """When the image was built, from its config blob."""
        config_digest = (json.loads(manifest).get("config") or {}).get("digest")
        if not config_digest:
            return None
        _, _, blob = self.request("GET", f"{name}/blobs/{config_digest}")
        created = json.loads(blob or b"{}").get("created")
        return datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00") if created else None

    def delete(self, path: str) -> None:
        for image in self.images(path):
            self.request("DELETE", f"{path}/{image.name}/manifests/{image.digest}")
