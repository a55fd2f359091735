"""The image registry's HTTPS door, before a real Debian registry on loopback: `/login` trades a session token,
sent as `snow` and Docker send it, for a bearer token; with it, pushes and reads go on to the registry,
streamed, its relative upload URLs and pages intact; without it, a challenge that sends Docker to `/login`;
strangers' tokens and names are refused."""

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spcs_local.emulator import registry, tls
from spcs_local.emulator.registry_front import RegistryFront, docker_login
from spcs_local.processes import free_port, stop, wait_for_http

from .fakes import running

TOKEN = "a-live-session-token"
OWN_TOKEN = "the-local-spcs-own-token"
NAME = "tutorial_db/data_schema/tutorial_repository/my_echo_service_image"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's registry on a free loopback port, as `make local-up` runs it."""
    if shutil.which(registry.PROGRAM) is None:
        if os.getenv("SPCS_REQUIRE_DOCKER") == "1":
            pytest.fail("docker-registry is missing, and SPCS_REQUIRE_DOCKER=1 requires it")
        pytest.skip("docker-registry is not installed (make local-up installs it)")
    folder, port = tmp_path_factory.mktemp("registry"), free_port()
    config = folder / "config.yml"
    config.write_text(registry.config(folder / "data", port))
    process = subprocess.Popen(registry.command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def serve_door(upstream: str, files: tls.TlsFiles) -> contextlib.AbstractContextManager[str]:
    door = RegistryFront(upstream, {TOKEN: "TUTORIAL_USER"}.get, OWN_TOKEN)
    return running(door, files, lifespan="off", timeout_graceful_shutdown=1)


@pytest.fixture
def door(upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, requests.Session]]:
    """The door's URL, and a requests session that trusts the local CA as `snow` does (REQUESTS_CA_BUNDLE)."""
    files = tls.ensure(tmp_path / "tls", ("localhost",), ("127.0.0.1",))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files.bundle))
    with serve_door(upstream, files) as url:
        yield url, requests.Session()


def snow_login(token: str, user: str = "0sessiontoken") -> dict[str, str]:
    """The header `snow spcs image-repository list-tags` logs in with, as Docker does after `docker login`."""
    login = docker_login(token) | {"username": user}
    return {"Authorization": "Basic " + base64.b64encode(f"{login['username']}:{login['password']}".encode()).decode()}


def bearer(url: str, client: requests.Session, token: str = TOKEN) -> None:
    """The client logs in as Docker does when the registry challenges it: at the realm, for a bearer token."""
    challenge = client.get(f"{url}/v2/")
    realm = challenge.headers["WWW-Authenticate"].split('realm="')[1].split('"')[0]
    client.headers["Authorization"] = f"Bearer {client.get(realm, headers=snow_login(token)).json()['token']}"


def push(url: str, client: requests.Session, tag: str) -> None:
    """An image as Docker pushes one, logged in: a blob by a monolithic upload to the URL the registry gives,
    then its manifest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    digest = "sha256:" + hashlib.sha256(config.encode()).hexdigest()
    started = client.post(f"{url}/v2/{NAME}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location.startswith("/v2/")  # relative: the registry's own port stays behind the door
    separator = "&" if "?" in location else "?"
    uploaded = client.put(f"{url}{location}{separator}digest={digest}", data=config.encode(),
                          headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest,
                           "size": len(config)}, "layers": []}  # fmt: skip
    put = client.put(f"{url}/v2/{NAME}/manifests/{tag}", data=json.dumps(manifest),
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    assert put.status_code == 201, put.text


def test_snows_login_gives_a_bearer_token_that_reads_every_page_of_tags(door) -> None:
    url, client = door
    bearer(url, client)
    for tag in [f"v{i:02}" for i in range(12)]:
        push(url, client, tag)

    login = requests.get(f"{url}/login", headers=snow_login(TOKEN))
    token = {"Authorization": f"Bearer {login.json()['token']}"}
    tags, page = [], f"{url}/v2/{NAME}/tags/list?n=10"
    while page:  # as snow pages: n=10, then last=<the last tag>
        reply = requests.get(page, headers=token)
        tags += reply.json()["tags"]
        page = f"{url}/v2/{NAME}/tags/list?n=10&last={tags[-1]}" if "Link" in reply.headers else ""

    assert login.status_code == 200 and login.json()["expires_in"] == 3600
    assert sorted(tags) == [f"v{i:02}" for i in range(12)]


@pytest.mark.parametrize(
    "headers",
    [
        snow_login("not-a-session"),
        snow_login(TOKEN, user="tutorial_user"),
        {"Authorization": "Basic " + base64.b64encode(b"0sessiontoken:not json").decode()},
        {"Authorization": "Basic %%%"},
        {"Authorization": f"Bearer {TOKEN}"},
        {},
    ],
)
def test_a_login_without_a_live_session_token_is_refused_in_one_line(door, headers: dict[str, str]) -> None:
    url, client = door

    reply = client.get(f"{url}/login", headers=headers)

    assert reply.status_code == 401
    assert reply.text == "Log in with 0sessiontoken and a session token (snow spcs image-registry token).\n"


def test_without_a_token_of_its_own_the_door_challenges_and_passes_nothing_on(door) -> None:
    url, client = door
    port = url.rsplit(":", 1)[1]

    anonymous = client.get(f"{url}/v2/")  # as Docker's first look, and a push without `docker login`
    made_up = client.get(f"{url}/v2/_catalog", headers={"Authorization": "Bearer made-up"})
    session = client.get(f"{url}/v2/_catalog", headers={"Authorization": f"Bearer {TOKEN}"})  # not a registry token

    assert [anonymous.status_code, made_up.status_code, session.status_code] == [401, 401, 401]
    assert anonymous.headers["WWW-Authenticate"] == (
        f'Bearer realm="https://127.0.0.1:{port}/login",service="127.0.0.1:{port}"'
    )
    assert anonymous.text == "The registry needs a login: snow spcs image-registry login.\n"
    assert "unknown or expired" in made_up.text


def test_the_local_spcs_logs_in_with_its_own_token(door) -> None:
    url, client = door

    bearer(url, client, OWN_TOKEN)

    assert client.get(f"{url}/v2/").status_code == 200


def test_a_name_other_than_loopback_is_refused(door) -> None:
    url, client = door

    reply = client.delete(f"{url}/v2/{NAME}/manifests/v00", headers={"Host": "registry.attacker.example"})

    assert reply.status_code == 403 and "not a name of the local SPCS" in reply.text


def test_a_registry_that_is_not_running_is_one_line_not_a_500(tmp_path: Path) -> None:
    files = tls.ensure(tmp_path / "tls", ("localhost",), ("127.0.0.1",))
    with serve_door(f"http://127.0.0.1:{free_port()}", files) as url:
        client = requests.Session()
        client.verify = str(files.bundle)
        client.trust_env = False  # this bundle, whatever REQUESTS_CA_BUNDLE says
        bearer(url, client)
        reply = client.get(f"{url}/v2/", timeout=10)

        assert reply.status_code == 502
        assert reply.text == "The local image registry is not running: make local-up.\n"
