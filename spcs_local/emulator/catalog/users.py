"""The local user's public keys, for key-pair logins (`ALTER USER ... SET RSA_PUBLIC_KEY`), as Snowflake keeps
two per user so that one can replace the other. No SQL: the statement layer sets them, the front reads them."""

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spcs_local.emulator.results import invalid

KEY_SLOTS = ("RSA_PUBLIC_KEY", "RSA_PUBLIC_KEY_2")
SUBJECT_INFO = serialization.PublicFormat.SubjectPublicKeyInfo


class Users:
    """Part of the Catalog: each user's public keys, persisted with the catalog."""

    def set_user_key(self, user: str, slot: str, text: str | None) -> None:
        """SET (a key, Snowflake's text: the PEM's body, with or without its header lines) or UNSET (None)."""
        if slot not in KEY_SLOTS:
            raise invalid(f"SQL compilation error:\ninvalid property '{slot}' for a user's key.")
        with self.lock:
            keys = self.users.setdefault(user.upper(), {})
            if text is None:
                keys.pop(slot, None)
            else:
                public_key(text)  # refused here, not at the next login
                keys[slot] = text
            self.save()

    def user_keys(self, user: str) -> dict[str, str]:
        """The user's public keys: each one's fingerprint (as a key-pair login names it) -> its PEM."""
        return {fingerprint(text): public_pem(text) for text in self.users.get(user.upper(), {}).values()}


def public_key(text: str) -> rsa.RSAPublicKey:
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        key = serialization.load_der_public_key(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        raise invalid("Invalid RSA public key: give the PEM's body (base64 of an RSA public key).") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise invalid("Invalid RSA public key: it is not an RSA key.")
    return key


def public_pem(text: str) -> str:
    return (
        public_key(text)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def fingerprint(text: str) -> str:
    der = public_key(text).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
