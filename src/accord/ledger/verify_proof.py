"""Check an Accord ledger proof (the JSON of ``accord ledger prove``) with nothing but Python.

    python verify_proof.py proof.json [--vkey '<name>+<id>+<key>']

Uses only the standard library's hashlib, json and base64 (and sys for its arguments): no Accord
code, no third-party packages, so anyone can read it and run it. It checks that

1. the checkpoint is signed (Ed25519, C2SP signed note) by the verifier key in the file, and by
   the key given with ``--vkey`` if there is one: pass the key the log operator publishes,
   since a key inside the file proves nothing about who made it;
2. each entry's leaf hashes to its leaf hash, and its inclusion proof (RFC 9162) leads to the
   checkpoint's root at the checkpoint's tree size;
3. each entry carries the person's subject tag,
   HMAC-SHA256(person key, "accord/ledger/subject/v1\\n" + leaf index),
   so it is about the person whose key the file holds: listed in the leaf's "subjects", or, for
   a leaf about many people that holds "subjects_count" and "subjects_root" instead, proved in
   the entry's "subject_proof" (its position and RFC 9162 inclusion path in the Merkle tree over
   the leaf's sorted tags, each tag's 32 bytes one leaf of that tree);
4. nothing is left out, when the checkpoint commits to a people map (an extension line
   "accord/people-map/v1 <map root> <function key>", the scheme of key-transparency systems
   such as CONIKS): the person's map key is the Ed25519 signature by the function key of
   SHA-256("accord/people-map/vuf/v1\\n" + their lookup pseudonym), hashed, where the lookup
   pseudonym is HMAC-SHA256(person key, "accord/ledger/lookup/v1")[:16]; the leaf at that key,
   proved up to the map root, holds the number of entries about the person and the head of a
   hash chain over them; both must match the entries in the file, so a list with one left out
   fails.

Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

FORMAT = "accord-ledger-proof/v1"
SUBJECT_CONTEXT = b"accord/ledger/subject/v1\n"
LOOKUP_CONTEXT = b"accord/ledger/lookup/v1"
MAP_FORMAT = "accord/people-map/v1"
VUF_CONTEXT = b"accord/people-map/vuf/v1\n"
VUF_OUTPUT_CONTEXT = b"accord/people-map/vuf-output/v1\n"
MAP_TOP = 16


# --- RFC 9162 hashing and inclusion proofs ------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- HMAC-SHA256 (RFC 2104) ---------------------------------------------------------------------


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).digest()


# --- Ed25519 verification (RFC 8032 section 5.1.7) ----------------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _multiply(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decode_point(encoded: bytes) -> Point | None:
    if len(encoded) != 32:
        return None
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            return None
        return 0, y, 1, 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


_BASE = _decode_point((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    if len(signature) != 64 or _BASE is None:
        return False
    a = _decode_point(public_key)
    r = _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little")
    return _same(_multiply(s, _BASE), _add(r, _multiply(h % _L, a)))


# --- C2SP signed notes and checkpoints -----------------------------------------------------------


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """``<name>+<key id hex>+<base64(0x01 || key)>`` → (name, key id, public key)."""
    name, id_hex, encoded = vkey.strip().split("+", 2)  # the base64 may contain '+'

    raw = base64.b64decode(encoded, validate=True)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key")
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != id_hex.lower():
        raise ValueError("the verifier key's id does not match its name and key")
    return name, key_id, raw[1:]


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Check the note's signature by ``vkey``; returns (origin, tree size, root hash)."""
    origin, size, root, _ = open_checkpoint_lines(note, vkey)
    return origin, size, root


def open_checkpoint_lines(note: str, vkey: str) -> tuple[str, int, bytes, list[str]]:
    """Check the note's signature by ``vkey``; returns (origin, tree size, root hash, extension
    lines)."""
    name, key_id, public_key = parse_vkey(vkey)
    cut = note.rfind("\n\n")
    if cut < 0:
        raise ValueError("not a signed note")
    text, signature_lines = note[: cut + 1], note[cut + 2 :].splitlines()
    for line in signature_lines:
        if not line.startswith("\u2014 "):
            raise ValueError(f"not a signature line: {line!r}")
        signer, _, encoded = line[2:].partition(" ")
        blob = base64.b64decode(encoded, validate=True)
        if signer == name and blob[:4] == key_id:
            if not ed25519_verify(public_key, text.encode("utf-8"), blob[4:]):
                raise ValueError(f"the signature by {name} does not verify")
            origin, size, root, *extensions = text.split("\n")[:-1]
            return origin, int(size), base64.b64decode(root, validate=True), extensions
    raise ValueError(f"the checkpoint is not signed by {name}")


# --- The proof file -----------------------------------------------------------------------------


def check(bundle: dict[str, object], trusted_vkey: str | None = None) -> list[str]:
    """Every problem with the proof bundle; an empty list means it all holds."""
    problems: list[str] = []
    if bundle.get("format") != FORMAT:
        return [f"not an Accord ledger proof (format {bundle.get('format')!r})"]
    vkey = str(bundle["vkey"])
    if trusted_vkey is not None and trusted_vkey.strip() != vkey:
        return ["the proof is signed by a different key than the one you trust"]
    try:
        origin, size, root, extensions = open_checkpoint_lines(str(bundle["checkpoint"]), vkey)
    except (ValueError, KeyError) as exc:
        return [f"checkpoint: {exc}"]
    if origin != vkey.split("+", maxsplit=1)[0]:
        problems.append(f"checkpoint: origin {origin!r} is not the signer's log")
    person = bundle["person"]
    assert isinstance(person, dict)  # noqa: S101  (a malformed file fails here, loudly)
    key = bytes.fromhex(str(person["key"]))
    entries = bundle["entries"]
    assert isinstance(entries, list)  # noqa: S101
    for entry in entries:
        index = int(entry["index"])
        data = str(entry["leaf"]).encode("utf-8")
        hashed = leaf_hash(data)
        if hashed.hex() != entry["leaf_hash"]:
            problems.append(f"entry {index}: the leaf does not hash to its leaf hash")
        path = [bytes.fromhex(p) for p in entry["inclusion_proof"]]
        if not verify_inclusion(hashed, index, size, path, root):
            problems.append(f"entry {index}: not included under the checkpoint (size {size})")
        tag = hmac_sha256(key, SUBJECT_CONTEXT + str(index).encode())
        if not is_subject(json.loads(data), tag, entry.get("subject_proof")):
            problems.append(f"entry {index}: the leaf is not about this person")
    problems += check_completeness(bundle, key, extensions)
    return problems


def is_subject(leaf: dict[str, object], tag: bytes, proof: object) -> bool:
    """Whether the leaf is about the person whose subject tag is ``tag``: listed in it, or, for a
    leaf committing to its subjects by a root, proved by ``proof`` ({"position", "path"})."""
    if "subjects_root" not in leaf:
        listed = leaf.get("subjects", [])
        return isinstance(listed, list) and tag.hex() in listed
    if not isinstance(proof, dict):
        return False
    try:
        root = bytes.fromhex(str(leaf["subjects_root"]))
        count = int(str(leaf["subjects_count"]))
        position = int(str(proof["position"]))
        path = [bytes.fromhex(str(p)) for p in proof["path"]]
    except (KeyError, TypeError, ValueError):
        return False
    if any(len(p) != 32 for p in path) or len(root) != 32:
        return False
    return verify_inclusion(leaf_hash(tag), position, count, path, root)


# --- Nothing left out: the people map -----------------------------------------------------------


def _map_bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def map_root_of(key: bytes, terminal: bytes, siblings: list[bytes]) -> bytes:
    """The map root reached from ``terminal`` at depth ``len(siblings)`` on ``key``'s path."""
    hashed = terminal
    for depth in range(len(siblings) - 1, -1, -1):
        if _map_bit(key, depth):
            hashed = node_hash(siblings[depth], hashed)
        else:
            hashed = node_hash(hashed, siblings[depth])
    return hashed


def _terminal(proof: dict[str, object], map_key: bytes, depth: int) -> tuple[bytes, int, bytes]:
    """Where the person's map path ends: its hash, and the count and chain head it stands for
    (0 and the chain's start when the path proves the person absent). Raises ValueError if the
    path cannot end there."""
    other = proof.get("other")
    if isinstance(other, dict):
        # The path ends at someone else's leaf: the person has no leaf, so no entries.
        other_key = bytes.fromhex(str(other["key"]))
        if other_key == map_key or any(
            _map_bit(other_key, d) != _map_bit(map_key, d) for d in range(depth)
        ):
            raise ValueError("the absence proof ends at a leaf not on the person's path")
        value = bytes.fromhex(str(other["value"]))
        return hashlib.sha256(b"\x00" + other_key + value).digest(), 0, bytes(32)
    count = int(str(proof["count"]))
    head = bytes.fromhex(str(proof["head"]))
    if count == 0:
        return bytes(32), 0, bytes(32)
    value = hashlib.sha256(count.to_bytes(8, "big") + head).digest()
    return hashlib.sha256(b"\x00" + map_key + value).digest(), count, head


def _map_key(proof: dict[str, object], key: bytes, function_key: bytes) -> bytes:
    """The person's map key, checked against the function key; raises ValueError if it fails."""
    lookup = hmac_sha256(key, LOOKUP_CONTEXT)[:16]
    if proof.get("lookup") != lookup.hex():
        raise ValueError("the proof is for someone else's lookup pseudonym")
    signature = bytes.fromhex(str(proof["vuf_proof"]))
    message = hashlib.sha256(VUF_CONTEXT + lookup).digest()
    if not ed25519_verify(function_key, message, signature):
        raise ValueError("the map key's proof does not verify under the checkpoint's key")
    map_key = hashlib.sha256(VUF_OUTPUT_CONTEXT + signature).digest()
    if proof.get("key") != map_key.hex():
        raise ValueError("the map key is not the one its proof gives")
    return map_key


def check_completeness(bundle: dict[str, object], key: bytes, extensions: list[str]) -> list[str]:
    """Every problem with the bundle's completeness proof (none: the list is the whole list as of
    the checkpoint, or the checkpoint commits to no people map)."""
    committed = [line.split(" ") for line in extensions if line.startswith(MAP_FORMAT + " ")]
    if not committed:
        return []
    if len(committed[0]) != 3:
        return ["completeness: the checkpoint's people-map line is malformed"]
    map_root = base64.b64decode(committed[0][1], validate=True)
    function_key = base64.b64decode(committed[0][2], validate=True)
    proof = bundle.get("completeness")
    if not isinstance(proof, dict):
        return ["completeness: the checkpoint commits to a people map but the file has no proof"]
    siblings = [bytes.fromhex(h) for h in proof["siblings"]]
    if not MAP_TOP <= len(siblings) <= 256:
        return ["completeness: the map path has an impossible length"]
    try:
        map_key = _map_key(proof, key, function_key)
        terminal, count, head = _terminal(proof, map_key, len(siblings))
    except ValueError as exc:
        return [f"completeness: {exc}"]
    if map_root_of(map_key, terminal, siblings) != map_root:
        return ["completeness: the person's map leaf is not under the checkpoint's map root"]
    entries = bundle["entries"]
    assert isinstance(entries, list)  # noqa: S101
    chained = bytes(32)
    for entry in sorted(entries, key=lambda e: int(e["index"])):
        step = int(entry["index"]).to_bytes(8, "big") + bytes.fromhex(entry["leaf_hash"])
        chained = hashlib.sha256(b"\x03" + chained + step).digest()
    if count != len(entries):
        problem = (
            f"completeness: the checkpoint commits to {count} entries about this person, the "
            f"list has {len(entries)}: the list is not the whole list"
        )
        return [problem]
    if chained != head:
        return ["completeness: the entries listed are not the ones the checkpoint commits to"]
    return []


def _read_bundle(path: str) -> tuple[dict[str, object] | None, str]:
    """The bundle in ``path``, or ``None`` and what is wrong with the file."""
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123  (stdlib only, on purpose)
            text = handle.read()
    except FileNotFoundError:
        return None, "no such file"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot be read ({exc.__class__.__name__}: {exc})"
    if not text.strip():
        return None, "the file is empty: write the bundle with `accord ledger prove --person ...`"
    try:
        bundle = json.loads(text)
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    if not isinstance(bundle, dict):
        return None, "not a proof bundle (a JSON object with entries and a checkpoint)"
    return bundle, ""


def _print_completeness(bundle: dict[str, object], count: int) -> None:
    if isinstance(bundle.get("completeness"), dict):
        print(f"ok   nothing left out: the checkpoint commits to exactly these {count}")
    else:
        print("note: the checkpoint commits to no people map, so completeness is not checked")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    trusted = None
    if "--vkey" in argv:
        at = argv.index("--vkey")
        if at + 1 >= len(argv):
            print("FAIL --vkey needs the log's verifier key after it")
            return 2
        trusted = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    if not argv:
        print("FAIL name the proof bundle to check (the JSON `accord ledger prove` writes)")
        return 2
    bundle, problem = _read_bundle(argv[0])
    if bundle is None:
        print(f"FAIL {argv[0]}: {problem}")
        return 2
    try:
        problems = check(bundle, trusted)
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        print(f"FAIL {argv[0]}: a malformed proof bundle ({exc.__class__.__name__}: {exc})")
        return 1
    entries = bundle.get("entries")
    if not isinstance(entries, list):  # check() has asserted it; this tells the type checker
        entries = []
    if problems:
        for problem in problems:
            print(f"FAIL {problem}")
        return 1
    for entry in entries:
        kind = json.loads(entry["leaf"]).get("kind")
        print(f"ok   entry {entry['index']} ({kind}) is in the log and about this person")
    many = "entry" if len(entries) == 1 else "entries"
    print(f"ok   {len(entries)} {many} under a checkpoint signed by {bundle['vkey']}")
    _print_completeness(bundle, len(entries))
    pending = bundle.get("pending")
    if isinstance(pending, list) and pending:
        print(
            f"note: {len(pending)} newer entries about this person are not yet under a signed "
            "checkpoint, so not proved here; ask for a proof again once one covers them"
        )
    if trusted is None:
        print("note: pass --vkey with the log's published key to be sure who signed it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
