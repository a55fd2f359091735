"""Key-pair logins, with the real connector: `ALTER USER ... SET RSA_PUBLIC_KEY` gives the local user a public
key, and a login with `authenticator=SNOWFLAKE_JWT` and the private key's file gets in, as against an account;
another key, an unset one, or another user's, gets Snowflake's errors."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spcs_local.emulator import client_env, connection_params

from .fakes import FakeBackend, LocalSPCS, serving


def key_pair(folder: Path, name: str) -> tuple[Path, str]:
    """A private key's file (PKCS#8, unencrypted, as `openssl genrsa` then `pkcs8 -nocrypt` make it) and the
    public key's PEM body, as ALTER USER takes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / f"{name}.p8"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, "".join(public.decode().splitlines()[1:-1])


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[dict]:
    """The password login's parameters, for the front over a fresh catalog."""
    with serving(LocalSPCS(tmp_path / "spcs", FakeBackend()), tmp_path / "snowflake") as base:
        yield connection_params(client_env(int(base.rsplit(":", 1)[1])))


def jwt_login(params: dict, private_key_file: Path) -> snowflake.connector.SnowflakeConnection:
    without_password = {k: v for k, v in params.items() if k != "password"}
    return snowflake.connector.connect(**without_password, authenticator="SNOWFLAKE_JWT",
                                       private_key_file=str(private_key_file), login_timeout=10)  # fmt: skip


def test_a_key_set_on_the_user_logs_in_and_unset_no_longer(emulator, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "mine")
    with snowflake.connector.connect(**emulator) as admin:
        admin.cursor().execute(f"ALTER USER tutorial_user SET RSA_PUBLIC_KEY = '{public}'")

        with jwt_login(emulator, private) as connection:
            answer = connection.cursor().execute("select 1").fetchone()
        admin.cursor().execute("ALTER USER tutorial_user UNSET RSA_PUBLIC_KEY")

        with pytest.raises(snowflake.connector.errors.DatabaseError, match="JWT token is invalid"):
            jwt_login(emulator, private)
    assert answer == (1,)


def test_the_second_slot_takes_a_key_too_and_a_key_never_set_gets_nowhere(emulator, tmp_path: Path) -> None:
    (first, _), (second, second_public) = key_pair(tmp_path, "first"), key_pair(tmp_path, "second")
    with snowflake.connector.connect(**emulator) as admin:
        admin.cursor().execute(f"ALTER USER tutorial_user SET RSA_PUBLIC_KEY_2 = '{second_public}'")

    with jwt_login(emulator, second) as connection:
        assert connection.cursor().execute("select 1").fetchone() == (1,)
    with pytest.raises(snowflake.connector.errors.DatabaseError, match="JWT token is invalid"):
        jwt_login(emulator, first)


def test_not_a_key_is_refused_and_another_users_key_opens_nothing(emulator, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "theirs")
    with snowflake.connector.connect(**emulator) as admin:
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match="Invalid RSA public key"):
            admin.cursor().execute("ALTER USER tutorial_user SET RSA_PUBLIC_KEY = 'not a key'")
        # A setup script's own user: it doesn't exist here, so the statement changes nothing, as CREATE USER.
        admin.cursor().execute(f"ALTER USER spcs_service_user SET RSA_PUBLIC_KEY = '{public}'")

    with pytest.raises(snowflake.connector.errors.DatabaseError, match="JWT token is invalid"):
        jwt_login(emulator, private)
