"""Signed tree heads: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A checkpoint body is three lines::

    <origin>
    <tree size, decimal>
    <root hash, base64>

and the signed note appends a blank line and one line per signature::

    — <key name> <base64(key id || Ed25519 signature of the body)>

where the key id is the first four bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)``.
A verifier key is shared as ``<key name>+<key id, 8 hex digits>+<base64(0x01 || public key)>``;
the signing key is kept in the data folder, readable only by its owner, as
``PRIVATE+KEY+<key name>+<key id>+<base64(0x01 || seed)>``: the text forms of Go's
``golang.org/x/mod/sumdb/note``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from accord.datafolder import KEY_FILE_NAME
from accord.errors import ConfigError, LedgerError, LedgerIntegrityError, translate
from accord.ledger.peoplemap import Vuf

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
ORIGIN_PREFIX = "accord.local/ledger/"
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def new_origin() -> str:
    """A name no other ledger has: C2SP checkpoints name their log by a unique origin line, and a
    verifier keyed by origin must never mistake one Accord's log for another's."""
    return f"{ORIGIN_PREFIX}{secrets.token_hex(8)}"


def _check_name(name: str) -> str:
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise ConfigError(f"a key name must be non-empty, without spaces or '+': {name!r}")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id of an Ed25519 key: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519 + public_key).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LedgerIntegrityError(f"{what} is not base64: {text!r}") from exc


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: which log, how many leaves, which root."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()
    """Lines after the root (C2SP tlog-checkpoint extension lines), such as the people map's
    (:func:`accord.ledger.peoplemap.checkpoint_line`); checkpoints signed before it have none."""

    def body(self) -> str:
        """The checkpoint's text, the part the signatures cover."""
        root = base64.b64encode(self.root).decode("ascii")
        extra = "".join(f"{line}\n" for line in self.extensions)
        return f"{self.origin}\n{self.size}\n{root}\n{extra}"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Read a checkpoint body (extension lines after the third are kept, not interpreted)."""
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not lines[0]:
            raise LedgerIntegrityError("a checkpoint has an origin, a size and a root, one a line")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise LedgerIntegrityError(f"checkpoint size is not a decimal number: {size_text!r}")
        root = _b64decode(root_text, "checkpoint root")
        if len(root) != 32:
            raise LedgerIntegrityError(f"checkpoint root has {len(root)} bytes, not 32")
        extensions = tuple(lines[3:-1])
        if any(not line for line in extensions):
            raise LedgerIntegrityError("a checkpoint's extension lines are not empty")
        return cls(origin=origin, size=int(size_text), root=root, extensions=extensions)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint and the signed note that carries it."""

    checkpoint: Checkpoint
    note: str


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its ``(key name, key id || signature)`` lines."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise LedgerIntegrityError("a signed note is text, a blank line, then signature lines")
    text, signature_block = note[: cut + 1], note[cut + 2 :]
    signatures: list[tuple[str, bytes]] = []
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise LedgerIntegrityError(f"not a signature line: {line!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        blob = _b64decode(encoded, f"signature by {name}")
        if not name or len(blob) < 5:
            raise LedgerIntegrityError(f"malformed signature line: {line!r}")
        signatures.append((name, blob))
    return text, signatures


class Verifier:
    """Checks notes signed by one Ed25519 key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self.name = _check_name(name)
        if len(public_key) != 32:
            raise ConfigError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
        self.public_key = public_key
        self.key_id = key_id(name, public_key)
        with translate(ConfigError, "loading the ledger's public key"):
            self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Read a verifier key ``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        # The base64 key may itself contain '+': split off the name and id only.
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise ConfigError(f"not a verifier key (name+id+key): {vkey!r}")
        name, id_hex, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"verifier key is not base64: {encoded!r}") from exc
        if raw[:1] != ED25519:
            raise ConfigError("verifier key is not an Ed25519 key (type byte 0x01)")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != id_hex.lower():
            raise ConfigError(f"verifier key id {id_hex} does not match its name and key")
        return verifier

    @property
    def vkey(self) -> str:
        """This key as a verifier key string."""
        encoded = base64.b64encode(ED25519 + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def open(self, note: str) -> Checkpoint:
        """The checkpoint in ``note``, if this key signed it; raises LedgerIntegrityError if not."""
        checkpoint = Checkpoint.parse(self.open_text(note))
        if checkpoint.origin != self.name:
            raise LedgerIntegrityError(
                f"checkpoint origin {checkpoint.origin!r} is not this log ({self.name!r})"
            )
        return checkpoint

    def open_text(self, note: str) -> str:
        """The text of any signed note this key signed; raises LedgerIntegrityError if not."""
        text, signatures = split_note(note)
        mine = [blob for name, blob in signatures if name == self.name and blob[:4] == self.key_id]
        if not mine:
            raise LedgerIntegrityError(f"the note carries no signature by {self.name}")
        try:
            self._key.verify(mine[0][4:], text.encode("utf-8"))
        except InvalidSignature:
            raise LedgerIntegrityError(f"the signature by {self.name} does not verify") from None
        return text


class Signer:
    """The log operator's Ed25519 key; its name is the log's origin."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = _check_name(name)
        self._key = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, public)

    @classmethod
    def generate(cls, name: str | None = None) -> Signer:
        """A new random key, for the log ``name`` (default: a new unique origin)."""
        return cls(name or new_origin(), Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> Signer:
        """Read ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>``."""
        if not text.startswith(_PRIVATE_PREFIX):
            raise ConfigError("not a ledger signing key (PRIVATE+KEY+...)")
        parts = text.strip()[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise ConfigError("not a ledger signing key (PRIVATE+KEY+name+id+key)")
        name, id_hex, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("the ledger signing key is not base64") from exc
        if raw[:1] != ED25519 or len(raw) != 33:
            raise ConfigError("the ledger signing key is not an Ed25519 seed")
        with translate(ConfigError, "loading the ledger signing key"):
            signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.key_id.hex() != id_hex.lower():
            raise ConfigError("the ledger signing key's id does not match its name and key")
        return signer

    def vuf(self) -> Vuf:
        """The people map's keying function, its key derived from this one
        (:meth:`accord.ledger.peoplemap.Vuf.derived`)."""
        return Vuf.derived(self._key.private_bytes_raw())

    def to_text(self) -> str:
        """The key as the text kept in its file."""
        seed = self._key.private_bytes_raw()
        encoded = base64.b64encode(ED25519 + seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{encoded}\n"

    def sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        """The signed note for ``checkpoint``."""
        if checkpoint.origin != self.name:
            raise LedgerError(f"this key signs for {self.name!r}, not {checkpoint.origin!r}")
        return SignedCheckpoint(checkpoint=checkpoint, note=self.sign_text(checkpoint.body()))

    def sign_text(self, text: str) -> str:
        """A signed note of ``text`` (non-empty, ending in a newline, without blank lines)."""
        if not text.endswith("\n") or "\n\n" in text:
            raise LedgerError("a note's text ends with a newline and has no blank line")
        with translate(LedgerError, "signing a note"):
            signature = self._key.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.verifier.key_id + signature).decode("ascii")
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"

    @classmethod
    def load_or_create(cls, data_dir: Path, name: str | None = None) -> Signer:
        """The signing key in ``data_dir``, created (mode 0600) on first use for the log ``name``
        (default: a new unique origin)."""
        path = data_dir / KEY_FILE_NAME
        with translate(ConfigError, f"reading the ledger signing key {path}"):
            if path.exists():
                return cls._load(path)
            data_dir.mkdir(parents=True, exist_ok=True)
            signer = cls.generate(name)
            # Written whole to a private temporary file, then linked into place: a reader never
            # sees a half-written key, and of two processes creating it at once one key wins.
            temporary = data_dir / f".{KEY_FILE_NAME}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(signer.to_text())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                return cls._load(path)
            finally:
                temporary.unlink()
            return signer

    @classmethod
    def _load(cls, path: Path) -> Signer:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the ledger signing key {path} is readable by others (mode {mode:o}); "
                "run chmod 600 on it"
            )
        return cls.from_text(path.read_text(encoding="ascii"))
