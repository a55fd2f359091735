"""The local CA and the certificate of the Snowflake front that containers reach over HTTPS, as in SPCS; and
the guards' and the local SPCS's own, with which it alone reaches the instances' ports (`docker_backend`).

The CA is made once and kept under the local SPCS's data dir (its key 0600); the front's certificate is
made again when its names change or it nears its end. Containers trust the CA through the standard trust
settings (SSL_CERT_FILE for Python's ssl, REQUESTS_CA_BUNDLE for requests and the connector), which point
at a bundle of the host's usual roots plus this CA, so their other HTTPS calls verify as before.
"""

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spcs_local.emulator.atomic import write

CA_DAYS, SERVER_DAYS, RENEW_DAYS = 3650, 397, 30
ORGANIZATION = "spcs-tutorials local SPCS"
CLIENT_NAME = "emulator.local-spcs.internal"  # the local SPCS's own certificate's name


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path  # the front's certificate, then the CA's
    key: Path
    ca: Path
    bundle: Path  # the host's roots and the CA: what containers trust
    gate: Path  # the guards' certificate, at 127.0.0.1: where the local SPCS reaches an instance's ports
    gate_key: Path
    client: Path  # the local SPCS's own, which the guards ask for: no other program gets through them
    client_key: Path


def ensure(folder: Path, names: tuple[str, ...], addresses: tuple[str, ...] = ()) -> TlsFiles:
    """The CA, a certificate for the front's host names and addresses, and the guards' and the local SPCS's
    own, made or renewed as needed."""
    folder = folder.resolve()  # containers mount the bundle by its absolute path
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_file, ca_key_file = folder / "ca.pem", folder / "ca-key.pem"
    names_on_disk = ("front", "front-key", "ca", "bundle", "gate", "gate-key", "client", "client-key")
    files = TlsFiles(*(folder / f"{name}.pem" for name in names_on_disk))
    if not (ca_file.exists() and ca_key_file.exists()) or expiring(load(ca_file)):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        write(ca_key_file, private_pem(ca_key), 0o600)
        write(ca_file, certificate_authority(ca_key).public_bytes(serialization.Encoding.PEM), 0o644)
        for issued in (files.certificate, files.gate, files.client):
            issued.unlink(missing_ok=True)
    ca_cert = load(ca_file)
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    for certificate, key, usage, (wanted_names, wanted_addresses) in (
        (files.certificate, files.key, ExtendedKeyUsageOID.SERVER_AUTH, (names, addresses)),
        (files.gate, files.gate_key, ExtendedKeyUsageOID.SERVER_AUTH, (("localhost",), ("127.0.0.1",))),
        (files.client, files.client_key, ExtendedKeyUsageOID.CLIENT_AUTH, ((CLIENT_NAME,), ())),
    ):
        wanted = sorted(wanted_names) + sorted(wanted_addresses)
        if not certificate.exists() or expiring(load(certificate)) or alt_names(load(certificate)) != wanted:
            private = ec.generate_private_key(ec.SECP256R1())
            write(key, private_pem(private), 0o600)
            issued = issue(private, ca_cert, ca_key, wanted_names, wanted_addresses, usage)
            write(certificate, issued.public_bytes(serialization.Encoding.PEM) + ca_file.read_bytes(), 0o644)
    write(files.bundle, host_roots() + b"\n" + ca_file.read_bytes(), 0o644)
    return files


def certificate_authority(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, "local SPCS CA")])  # fmt: skip
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: tuple[str, ...],
    addresses: tuple[str, ...],
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> x509.Certificate:
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    alternatives = [x509.DNSName(name) for name in sorted(names)]
    alternatives += [x509.IPAddress(ipaddress.ip_address(address)) for address in sorted(addresses)]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sorted(names)[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """What the front serves HTTPS with."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate, files.key)
    return context


def gate_context(files: TlsFiles) -> ssl.SSLContext:
    """How the local SPCS calls an instance's ports through its guard: with its own certificate, trusting
    only the local CA."""
    context = ssl.create_default_context(cafile=files.ca)
    context.load_cert_chain(files.client, files.client_key)
    return context


def host_roots() -> bytes:
    """The roots this host trusts (its system bundle, else certifi's), so that a container's other HTTPS
    calls through an external access integration verify as they would without the local CA."""
    system = ssl.get_default_verify_paths().cafile
    return Path(system if system and os.path.exists(system) else certifi.where()).read_bytes()


def alt_names(certificate: x509.Certificate) -> list[str]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(names.get_values_for_type(x509.DNSName)) + sorted(
        str(address) for address in names.get_values_for_type(x509.IPAddress)
    )


def expiring(certificate: x509.Certificate) -> bool:
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left < datetime.timedelta(days=RENEW_DAYS)


def load(file: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(file.read_bytes())


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
