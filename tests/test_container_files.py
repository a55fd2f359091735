"""The files the local SPCS writes into a container before it starts (secrets, the session token, a
connections.toml): with their modes, and owned by the user the image runs as, so that 0600 is its own."""

import io
import tarfile
from dataclasses import dataclass, field

import docker.errors
import pytest

from spcs_local.emulator.docker_containers import archive, owner

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:10001:10002::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:app\n"


@dataclass
class CreatedContainer:
    """What `owner` reads of a created container: its config, and files of its image."""

    user: str
    files: dict[str, str] = field(default_factory=lambda: {"/etc/passwd": PASSWD, "/etc/group": GROUP})

    @property
    def attrs(self) -> dict:
        return {"Config": {"User": self.user}}

    def get_archive(self, path: str) -> tuple[list[bytes], dict]:
        if path not in self.files:
            raise docker.errors.NotFound(f"no {path}")
        return [archive({path: (self.files[path].encode(), 0o444)}, (0, 0))], {}


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", (0, 0)),  # no USER: root
        ("10001:10001", (10001, 10001)),  # the apps' Dockerfiles
        ("10001", (10001, 10001)),
        ("app", (10001, 10002)),  # by name: the image's /etc/passwd
        ("app:staff", (10001, 50)),  # and its /etc/group
        ("app:7", (10001, 7)),
        ("nobody-here", (0, 0)),
    ],
)
def test_files_belong_to_the_user_the_image_runs_as(user: str, expected: tuple[int, int]) -> None:
    assert owner(CreatedContainer(user)) == expected  # type: ignore[arg-type]


def test_an_image_without_passwd_gets_root() -> None:
    assert owner(CreatedContainer("app", files={})) == (0, 0)  # type: ignore[arg-type]


def test_the_archive_keeps_each_files_mode_and_owner() -> None:
    data = archive({"/app/session/token": (b"t0k3n", 0o600), "/run/secrets/api/key": (b"k", 0o444)}, (10001, 50))

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: (m.mode, m.uid, m.gid) for m in tar.getmembers()}
    assert members == {"app/session/token": (0o600, 10001, 50), "run/secrets/api/key": (0o444, 10001, 50)}
