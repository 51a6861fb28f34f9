"""Signed artifacts: an ed25519 signature over an artifact's MANIFEST.json, which lists every file's sha256, so one
signature covers the whole bundle or calibration transfer.

Why not OpenSSF ``model-signing``: it is not installable on the machines this was built on (no network), and its
local-key mode signs the same thing this does (a manifest of file digests) with a different envelope. ed25519 comes
from ``cryptography``, already a dependency: small keys, deterministic signatures, no parameters to get wrong.

Files:

* the private key: PEM (PKCS#8, unencrypted), written with mode 0600; it belongs to whoever publishes (the trainer),
  never in the repository or the image (``signing_key_file``: a docker secret or a file outside the repo);
* a public key: PEM (SubjectPublicKeyInfo); a reader trusts the public keys in one folder (``trusted_keys_dir``);
* ``MANIFEST.sig`` beside ``MANIFEST.json``: JSON with the algorithm, the signer's key id (sha256 of the raw public
  key, hex) and the signature of ``CONTEXT + MANIFEST.json``'s bytes (the context keeps a signature made here from
  meaning anything elsewhere).

What a signature does not say: which version number or which analyzer an artifact is, nor that it is the newest;
a registry writer may copy a signed bundle under a new number or point the champion at an older signed version
(docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nirstream.core.artifacts.atomic_files import write_atomically
from nirstream.core.artifacts.manifest import MANIFEST_FILE, SIGNATURE_FILE, ArtifactError

ALGORITHM = "ed25519"
CONTEXT = b"nirstream artifact manifest v1\n"
PUBLIC_KEY_SUFFIXES = (".pem", ".pub")

log = logging.getLogger(__name__)


class SignatureError(ArtifactError):
    """An artifact refused by the trust check; ``reason`` names why (the worker's metric label):
    ``unsigned``, ``untrusted_key``, ``bad_signature``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class KeyFileError(ValueError):
    """A key file that cannot be used (missing, not ed25519, a private key where a public one belongs)."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's fingerprint: sha256 of its 32 raw bytes, hex (what ``MANIFEST.sig`` names and ``keygen`` prints)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_key_pair(private_path: Path, public_path: Path) -> str:
    """Write a new private key (0600, refused if the file exists) and its public key; return the key id."""
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    private_path = Path(private_path)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key (the artifacts it signed would lose their signer); 0600 from the first byte
    handle = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(pem)
    public_key = private_key.public_key()
    Path(public_path).parent.mkdir(parents=True, exist_ok=True)
    with Path(public_path).open("xb") as out:
        out.write(public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(public_key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path} is a private key: a trust list holds public keys only")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is a {type(key).__name__}, not an ed25519 public key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read_key_file(path)
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        log.warning("signing key %s is readable by others (mode %o): chmod 600 it", path, mode)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is a {type(key).__name__}, not an ed25519 private key")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ArtifactSigner:
    """A publisher's private key: signs an artifact folder's manifest."""

    private_key: Ed25519PrivateKey

    @classmethod
    def from_file(cls, path: str | Path) -> ArtifactSigner:
        return cls(load_private_key(Path(path)))

    @property
    def key_id(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, directory: str | Path) -> Path:
        """Write (or replace) ``MANIFEST.sig`` for the manifest as it is now; the caller has verified the files."""
        directory = Path(directory)
        manifest = (directory / MANIFEST_FILE).read_bytes()
        signature = self.private_key.sign(CONTEXT + manifest)
        envelope = {"algorithm": ALGORITHM, "key_id": self.key_id,
                    "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
                    "signature": base64.b64encode(signature).decode("ascii")}
        write_atomically(directory / SIGNATURE_FILE, json.dumps(envelope, indent=2))
        return directory / SIGNATURE_FILE


@dataclass(frozen=True)
class ArtifactTrust:
    """What a reader accepts: manifests signed by one of ``trusted`` (key id -> public key); unsigned artifacts
    only with ``allow_unsigned`` (trials, tests). A present signature must verify even then."""

    trusted: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    allow_unsigned: bool = False
    source: str = ""  # where the keys came from, for messages

    @classmethod
    def from_folder(cls, folder: str | Path | None, allow_unsigned: bool = False) -> ArtifactTrust:
        """Every ``*.pem``/``*.pub`` file in ``folder`` is a trusted public key (a file that is not one is an error:
        a trust list must not be silently shorter than its folder)."""
        if folder is None:
            return cls({}, allow_unsigned, "no trusted_keys_dir")
        folder = Path(folder)
        if not folder.is_dir():
            raise KeyFileError(f"trusted keys folder {folder} does not exist")
        keys = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in PUBLIC_KEY_SUFFIXES:
                key = load_public_key(path)
                keys[key_id(key)] = key
        return cls(keys, allow_unsigned, str(folder))

    def check(self, directory: Path, manifest: bytes) -> str | None:
        """The key id that signed ``manifest`` (the bytes of ``directory``'s MANIFEST.json), None for an unsigned
        artifact allowed by ``allow_unsigned``; else ``SignatureError``."""
        path = Path(directory) / SIGNATURE_FILE
        if not path.exists():
            if self.allow_unsigned:
                return None
            raise SignatureError("unsigned", f"{directory}: no {SIGNATURE_FILE}: unsigned artifacts are refused "
                                             "(sign it with `nirstream models sign`, or set allow_unsigned for a trial)")
        try:
            envelope = json.loads(path.read_text())
            signer, algorithm = str(envelope["key_id"]), envelope["algorithm"]
            signature = base64.b64decode(envelope["signature"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise SignatureError("bad_signature", f"{directory}: unreadable {SIGNATURE_FILE}: {exc}") from None
        if algorithm != ALGORITHM:
            raise SignatureError("bad_signature", f"{directory}: signature algorithm {algorithm!r}, expected {ALGORITHM}")
        key = self.trusted.get(signer)
        if key is None:
            raise SignatureError("untrusted_key", f"{directory}: signed by key {signer[:16]}, which is not in the trust "
                                                  f"list ({self.source or 'empty'}: {len(self.trusted)} key(s))")
        try:
            key.verify(signature, CONTEXT + manifest)
        except InvalidSignature:
            raise SignatureError("bad_signature", f"{directory}: the signature of key {signer[:16]} does not match "
                                                  f"{MANIFEST_FILE} (edited after signing, or a forged signature)") from None
        return signer


UNSIGNED_WARNING = ("allow_unsigned is set: artifacts without a signature, and champions the audit trail does not account "
                    "for, are served; anyone who can write the registry decides what is predicted (trials only)")


def configured_trust(trusted_keys_dir: str | Path | None, allow_unsigned: bool) -> ArtifactTrust:
    """The trust list a reader's settings describe (``trusted_keys_dir``, ``allow_unsigned``), refused when it
    could accept nothing: no trusted key and unsigned artifacts not allowed."""
    trust = ArtifactTrust.from_folder(trusted_keys_dir, allow_unsigned)
    if not trust.trusted and not allow_unsigned:
        raise KeyFileError(f"no trusted public key ({trust.source}) and allow_unsigned is not set: no model could be "
                           "accepted. Set trusted_keys_dir (NIRSTREAM_TRUSTED_KEYS_DIR) to a folder of public keys from "
                           "`nirstream models keygen`, or NIRSTREAM_ALLOW_UNSIGNED=true for a trial")
    if allow_unsigned:
        log.warning(UNSIGNED_WARNING)
    return trust


def configured_signer(signing_key_file: str | Path | None) -> ArtifactSigner | None:
    """The publisher's signer (``signing_key_file``), None when no key is configured (artifacts stay unsigned)."""
    if signing_key_file is None:
        return None
    signer = ArtifactSigner.from_file(signing_key_file)
    log.info("signing published artifacts with key %s", signer.key_id[:16])
    return signer
