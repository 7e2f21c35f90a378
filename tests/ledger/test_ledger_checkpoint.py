"""Signed checkpoints: the C2SP signed-note format, Go's reference note, the key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from accord.datafolder import KEY_FILE_NAME
from accord.errors import ConfigError, LedgerError, LedgerIntegrityError
from accord.ledger.checkpoint import (
    Checkpoint,
    Signer,
    Verifier,
    key_id,
    split_note,
)

pytestmark = pytest.mark.unit

# The example of golang.org/x/mod/sumdb/note (its package documentation and ExampleSign): Ed25519
# is deterministic, so the same key and text must give the same note, byte for byte.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
GO_NOTE = f"{GO_TEXT}\n— PeterNeumann {GO_SIGNATURE}\n"
ROOT = bytes(range(32))


def test_go_reference_key_gives_go_reference_note() -> None:
    signer = Signer.from_text(GO_SIGNER)
    assert signer.verifier.vkey == GO_VERIFIER
    assert signer.sign_text(GO_TEXT) == GO_NOTE
    assert signer.to_text().strip() == GO_SIGNER


def test_go_reference_note_opens_and_a_changed_one_does_not() -> None:
    verifier = Verifier.from_vkey(GO_VERIFIER)
    assert verifier.open_text(GO_NOTE) == GO_TEXT
    with pytest.raises(LedgerIntegrityError, match="does not verify"):
        verifier.open_text(GO_NOTE.replace("cryptography", "cryptographY"))


def test_key_id_follows_c2sp() -> None:
    public = base64.b64decode(GO_VERIFIER.split("+", 2)[2])[1:]
    assert key_id("PeterNeumann", public).hex() == "c74f20a3"


def test_checkpoint_body_is_the_tlog_checkpoint_format(signer: Signer) -> None:
    checkpoint = Checkpoint(signer.name, 42, ROOT)
    assert checkpoint.body() == f"{signer.name}\n42\n{base64.b64encode(ROOT).decode()}\n"
    signed = signer.sign(checkpoint)
    text, signatures = split_note(signed.note)
    assert text == checkpoint.body()
    assert signatures[0][0] == signer.name
    assert signatures[0][1][:4] == signer.verifier.key_id
    assert signer.verifier.open(signed.note) == checkpoint


def test_a_note_signed_by_another_key_does_not_open(signer: Signer) -> None:
    other = Signer.generate(signer.name)
    note = other.sign(Checkpoint(signer.name, 1, ROOT)).note
    with pytest.raises(LedgerIntegrityError, match="no signature by"):
        signer.verifier.open(note)


def test_unknown_cosignatures_are_ignored(signer: Signer) -> None:
    note = signer.sign(Checkpoint(signer.name, 1, ROOT)).note
    witness = Signer.generate("witness.example")
    extra = witness.sign_text(Checkpoint(signer.name, 1, ROOT).body()).split("\n\n")[1]
    assert signer.verifier.open(note + extra).size == 1


def test_a_checkpoint_for_another_origin_is_refused(signer: Signer) -> None:
    with pytest.raises(LedgerError, match="signs for"):
        signer.sign(Checkpoint("elsewhere.example/log", 1, ROOT))


@pytest.mark.parametrize(
    "note",
    [
        "origin\n1\nAAAA\n",  # no blank line, no signatures
        "origin\n1\nAAAA\n\n-- origin c2lnbmF0dXJl\n",  # ASCII dashes are not an em dash
        "origin\n1\nAAAA\n\n— origin !!!\n",  # not base64
        "origin\n1\nAAAA\n\n— origin AAAA\n",  # too short for key id and signature
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(LedgerIntegrityError):
        split_note(note)


@pytest.mark.parametrize(
    "body",
    [
        "origin\n01\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
        "origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n",  # negative
        "origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # short root
        "origin\n1\n",  # no root
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(LedgerIntegrityError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
        "PeterNeumann+c74f20a3+AhpcZ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not type 0x01
        "PeterNeumann+c74f20a3",  # no key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
    ],
)
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(ConfigError):
        Verifier.from_vkey(vkey)


def test_the_signing_key_is_created_once_and_private(tmp_path: Path) -> None:
    first = Signer.load_or_create(tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Signer.load_or_create(tmp_path / "data")
    assert again.verifier.vkey == first.verifier.vkey
    assert [p.name for p in (tmp_path / "data").iterdir()] == [KEY_FILE_NAME]


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    Signer.load_or_create(tmp_path)
    os.chmod(tmp_path / KEY_FILE_NAME, 0o644)  # noqa: PTH101
    with pytest.raises(ConfigError, match="readable by others"):
        Signer.load_or_create(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "not a key",
        "PRIVATE+KEY+name+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # wrong id
        "PRIVATE+KEY+name+c74f20a3+AYEK",  # too short
    ],
)
def test_a_damaged_key_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / KEY_FILE_NAME
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError):
        Signer.load_or_create(tmp_path)
