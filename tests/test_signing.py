"""Signed artifacts (nirstream/core/artifacts/signing.py): signatures, trust lists, pointer versions, the audited
champion, and `nirstream models keygen/sign/verify`. The running worker's refusals: tests/test_signed_models.py."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from nirstream.core.artifacts.bundle import load_bundle, verify_bundle
from nirstream.core.artifacts.manifest import SIGNATURE_FILE, ArtifactError
from nirstream.core.artifacts.registry import AuditMismatch, ModelRegistry, PointerError, plain_number
from nirstream.core.artifacts.signing import ArtifactTrust, KeyFileError, SignatureError, configured_trust
from nirstream.core.artifacts.transfer import CalibrationTransfer, TransferMetadata
from tests.helpers import tamper


@pytest.fixture
def trust(signing_keys):
    return ArtifactTrust.from_folder(signing_keys.trusted)


def refusal(directory, trust) -> str:
    with pytest.raises(SignatureError) as caught:
        verify_bundle(directory, trust)
    return caught.value.reason


def test_a_signed_bundle_verifies_and_loads_only_with_a_trusted_key(registry, signing_keys, trust):
    bundle = registry.path("1")
    assert refusal(bundle, trust) == "unsigned"
    verify_bundle(bundle, ArtifactTrust(allow_unsigned=True))  # a trial accepts it
    signing_keys.signer.sign(bundle)
    assert load_bundle(bundle, trust=trust).version == "1"
    assert refusal(bundle, ArtifactTrust.from_folder(None)) == "untrusted_key"
    signing_keys.outsider_signer.sign(bundle)
    assert refusal(bundle, trust) == "untrusted_key"
    assert refusal(bundle, ArtifactTrust(trust.trusted, allow_unsigned=True)) == "untrusted_key"  # present: must verify


def test_tampering_after_signing_is_refused(registry, signing_keys, trust):
    bundle = registry.path("1")
    signing_keys.signer.sign(bundle)
    tamper(bundle / "arrays.npz")  # the manifest (and so its signature) still holds: the checksum refuses it
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        verify_bundle(bundle, trust)
    other = registry.path("2")
    signing_keys.signer.sign(other)
    manifest = json.loads((other / "MANIFEST.json").read_text())
    manifest["files"]["arrays.npz"]["sha256"] = "0" * 64  # the manifest edited to match a replaced file
    (other / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    assert refusal(other, trust) == "bad_signature"


@pytest.mark.parametrize("damage", ["not json", "wrong algorithm", "bad base64", "flipped bit", "no signature field"])
def test_a_malformed_signature_is_refused(registry, signing_keys, trust, damage):
    bundle = registry.path("1")
    envelope = json.loads(signing_keys.signer.sign(bundle).read_text())
    if damage == "not json":
        (bundle / SIGNATURE_FILE).write_text("{garbage")
    else:
        if damage == "wrong algorithm":
            envelope["algorithm"] = "rsa"
        elif damage == "bad base64":
            envelope["signature"] = "***"
        elif damage == "flipped bit":
            raw = bytearray(base64.b64decode(envelope["signature"]))
            raw[0] ^= 1
            envelope["signature"] = base64.b64encode(bytes(raw)).decode()
        else:
            del envelope["signature"]
        (bundle / SIGNATURE_FILE).write_text(json.dumps(envelope))
    assert refusal(bundle, trust) == "bad_signature"


def test_keys_private_mode_and_trust_list_mistakes(signing_keys, tmp_path):
    assert stat.S_IMODE(signing_keys.private.stat().st_mode) == 0o600
    mistaken = tmp_path / "trust"
    mistaken.mkdir()
    (mistaken / "trainer.pem").write_bytes(signing_keys.private.read_bytes())
    with pytest.raises(KeyFileError, match="private key"):
        ArtifactTrust.from_folder(mistaken)
    with pytest.raises(KeyFileError, match="no trusted public key"):
        configured_trust(None, allow_unsigned=False)
    (mistaken / "trainer.pem").write_text("not a key")
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        ArtifactTrust.from_folder(mistaken)


def test_the_registry_signs_bundles_and_transfers_it_publishes(registry, signing_keys, trust):
    signing = ModelRegistry(registry.base, signer=signing_keys.signer)
    version = signing.publish(lambda d: __import__("shutil").copytree(registry.path("2"), d))
    assert (signing.path(version) / SIGNATURE_FILE).exists()
    loaded = ModelRegistry(registry.base, trust=trust)
    assert loaded.load(version).version == version
    with pytest.raises(SignatureError):
        loaded.load("2")  # published without a signer
    grid = loaded.metadata(version).input_grid
    transfer = CalibrationTransfer(TransferMetadata(analyzer="line-2", method="sbc", model_version=version, grid=grid,
                                                    targets=["fat"], standards=["a", "b", "c"],
                                                    prediction_slope={"fat": 1.0}, prediction_bias={"fat": 0.5}))
    number = signing.publish_transfer(transfer, "test")
    assert loaded.load_transfer("line-2", number).metadata.prediction_bias == {"fat": 0.5}


@pytest.mark.parametrize("value", ["../..", "1/../../x", "1.0", 1.5, "-1", -1, "01", " 1", "", None, True, "١"])
def test_pointer_versions_must_be_plain_integers(value):
    with pytest.raises(PointerError):
        plain_number(value, "champion.json")


def test_pointer_files_are_validated(registry):
    assert plain_number(3, "x") == "3" and plain_number("0", "x") == "0"
    (registry.base / "champion.json").write_text(json.dumps({"version": "../.."}))
    with pytest.raises(PointerError, match="not a plain non-negative integer"):
        registry.champion()
    active = registry.base / "transfers" / "line-1" / "active.json"
    active.parent.mkdir(parents=True)
    active.write_text(json.dumps({"number": "1/../../../2"}))
    with pytest.raises(PointerError):
        registry.active_transfers()


def test_the_audited_champion_is_the_audit_trails_last_promotion(registry):
    assert registry.audited_champion() == "1"
    pointer = registry.base / "champion.json"
    saved = pointer.read_text()
    pointer.write_text(json.dumps({"version": "2"}))  # moved by hand: no record
    with pytest.raises(AuditMismatch, match="names version 1"):
        registry.audited_champion()
    pointer.write_text(saved)
    registry.promote("2", "recorded")
    assert registry.audited_champion() == "2"
    history = registry.base / "history.jsonl"
    history.write_text(history.read_text().replace("recorded", "r3corded"))  # an edited record
    with pytest.raises(AuditMismatch, match="does not verify"):
        registry.audited_champion()


def test_cli_keygen_sign_verify_exit_codes(registry, tmp_path, monkeypatch, capsys):
    from nirstream.cli import main

    monkeypatch.setenv("NIRSTREAM_ALLOW_UNSIGNED", "false")
    key, trusted = tmp_path / "k" / "trainer.key", tmp_path / "trusted"
    assert main(["models", "keygen", "--private-key", str(key), "--public-key", str(trusted / "trainer.pem")]) == 0
    assert main(["models", "keygen", "--private-key", str(key), "--public-key", str(tmp_path / "x.pem")]) == 2
    base = ["--registry", str(registry.base)]
    assert main(["models", "verify", "1", "--trusted-keys", str(trusted), *base]) == 2  # unsigned
    assert main(["models", "verify", "1", "--trusted-keys", str(trusted), "--allow-unsigned", *base]) == 0
    assert main(["models", "sign", "1", "--key", str(key), *base]) == 0
    assert main(["models", "verify", "1", "--trusted-keys", str(trusted), *base]) == 0
    assert main(["models", "verify", str(registry.path("1")), "--trusted-keys", str(tmp_path), *base]) == 2  # no key there
    assert main(["models", "verify", "../1", "--trusted-keys", str(trusted), *base]) == 2  # not a version
    tamper(registry.path("1") / "arrays.npz")
    assert main(["models", "verify", "1", "--trusted-keys", str(trusted), *base]) == 2
    assert main(["models", "sign", "1", "--key", str(key), *base]) == 2  # a tampered artifact is never signed
    assert "checksum mismatch" in capsys.readouterr().err
