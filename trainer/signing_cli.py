"""``nirstream models keygen``, ``sign`` and ``verify``: the keys and signatures of artifacts (docs/security.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(actions: argparse._SubParsersAction, registry_argument) -> None:
    """Add the three actions to ``nirstream models``; ``registry_argument`` adds ``--registry`` to a parser."""
    keygen = actions.add_parser(
        "keygen", help="make an ed25519 key pair for signing artifacts",
        description="Write a new ed25519 private key (PEM, mode 0600; never overwritten) and its public key, and print "
                    "the key id. The private key belongs to the trainer (a docker secret or a file outside the repo: "
                    "signing_key_file); copy the public key into the trusted_keys_dir of every worker.")
    keygen.add_argument("--private-key", type=Path, required=True, help="where to write the private key")
    keygen.add_argument("--public-key", type=Path, required=True, help="where to write the public key (*.pem)")
    keygen.set_defaults(handler=_keygen)
    sign = actions.add_parser(
        "sign", help="sign a bundle or calibration transfer (checks its checksums first)",
        description="Verify TARGET's checksums, then write MANIFEST.sig beside its MANIFEST.json: a registry version "
                    "number, or the folder of a bundle or transfer (e.g. REGISTRY/transfers/line-2/1).")
    sign.add_argument("target", help="version number in --registry, or an artifact folder")
    sign.add_argument("--key", type=Path, help="private key (default $NIRSTREAM_SIGNING_KEY_FILE)")
    registry_argument(sign)
    sign.set_defaults(handler=_sign)
    verify = actions.add_parser(
        "verify", help="check an artifact's signature against the trust list, and its checksums",
        description="Exit 0 when TARGET's signature verifies against a trusted public key and its files match the "
                    "manifest (what the worker accepts); exit 2 with the reason otherwise.")
    verify.add_argument("target", help="version number in --registry, or an artifact folder")
    verify.add_argument("--trusted-keys", type=Path, help="folder of trusted public keys (default $NIRSTREAM_TRUSTED_KEYS_DIR)")
    verify.add_argument("--allow-unsigned", action="store_true", default=None,
                        help="accept an artifact without a signature (default $NIRSTREAM_ALLOW_UNSIGNED)")
    registry_argument(verify)
    verify.set_defaults(handler=_verify)


def _keygen(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.signing import generate_key_pair

    for path in (args.private_key, args.public_key):
        if path.exists():
            raise ValueError(f"{path} exists: a key is never overwritten (the artifacts it signed would lose their signer)")
    key_id = generate_key_pair(args.private_key, args.public_key)
    print(f"key id {key_id}\nprivate key {args.private_key} (keep it outside the repository; signing_key_file)\n"
          f"public key {args.public_key} (copy it into the workers' trusted_keys_dir)")
    return 0


def _artifact(args: argparse.Namespace, settings) -> Path:
    """TARGET as a folder: a registry version number, or a path."""
    from nirstream.core.artifacts.registry import ModelRegistry, plain_number

    folder = Path(args.target)
    if folder.is_dir():
        return folder
    return ModelRegistry(args.registry or settings.registry).path(plain_number(args.target, "version"))


def _check(folder: Path, trust=None) -> str:
    """Verify a bundle or transfer folder (checksums; with ``trust`` the signature); return what it is."""
    from nirstream.core.artifacts.bundle import verify_bundle
    from nirstream.core.artifacts.transfer import TRANSFER_METADATA_FILE, load_transfer

    if (folder / TRANSFER_METADATA_FILE).exists():
        load_transfer(folder, trust)
        return "calibration transfer"
    verify_bundle(folder, trust)
    return "bundle"


def _sign(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.signing import ArtifactSigner
    from nirstream.core.settings import SharedSettings

    settings = SharedSettings.load()
    key = args.key or settings.signing_key_file
    if key is None:
        raise ValueError("no private key: give --key or set NIRSTREAM_SIGNING_KEY_FILE")
    folder = _artifact(args, settings)
    what = _check(folder)  # never sign a tampered artifact
    signer = ArtifactSigner.from_file(key)
    print(f"signed {what} {folder} with key {signer.key_id} ({signer.sign(folder).name})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.manifest import SIGNATURE_FILE
    from nirstream.core.artifacts.signing import ArtifactTrust
    from nirstream.core.settings import SharedSettings

    settings = SharedSettings.load()
    allow_unsigned = settings.allow_unsigned if args.allow_unsigned is None else args.allow_unsigned
    trust = ArtifactTrust.from_folder(args.trusted_keys or settings.trusted_keys_dir, allow_unsigned)
    folder = _artifact(args, settings)
    what = _check(folder, trust)  # SignatureError / checksum errors: exit 2 with the reason
    signed = (folder / SIGNATURE_FILE).exists()
    print(f"{what} {folder}: " + ("signature verifies against a trusted key; checksums match" if signed
                                   else "UNSIGNED (accepted only because allow_unsigned is set); checksums match"))
    return 0
