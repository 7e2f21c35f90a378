// Checking Accord ledger proofs in the browser with WebCrypto, as verify_proof.py does in Python:
// RFC 9162 leaf and node hashes (SHA-256), inclusion proofs (section 2.1.3.2) and consistency
// proofs (section 2.1.4.2); the subject tag HMAC-SHA256(person key, "accord/ledger/subject/v1\n" +
// leaf index), listed in the leaf or proved in its tree of subjects; and C2SP signed-note
// checkpoints signed with Ed25519 (RFC 8032), where the browser's WebCrypto has Ed25519; and the people map a checkpoint commits to (accord/people-map/v1, as in
// key-transparency systems such as CONIKS), which shows that a list of a person's entries is the
// whole list. Everything is exposed as window.AccordLedger.
"use strict";

(() => {
  const encoder = new TextEncoder();
  const SUBJECT_CONTEXT = "accord/ledger/subject/v1\n";
  const LOOKUP_CONTEXT = "accord/ledger/lookup/v1";
  const MAP_FORMAT = "accord/people-map/v1";
  const VUF_CONTEXT = "accord/people-map/vuf/v1\n";
  const VUF_OUTPUT_CONTEXT = "accord/people-map/vuf-output/v1\n";
  const MAP_TOP = 16;

  function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function unhex(text) {
    if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) {
      throw new Error("not a hex string");
    }
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i += 1) {
      out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  function unbase64(text) {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function same(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  function leafHash(data) {
    return sha256(concat(Uint8Array.of(0), data));
  }

  function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  // Halving with arithmetic, not bit operators: those cut numbers to 32 bits.
  const half = (n) => Math.floor(n / 2);
  const odd = (n) => n % 2 === 1;

  async function verifyInclusion(leaf, index, size, proof, root) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
      return false;
    }
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0 || p.length !== 32) return false;
      if (odd(fn) || fn === sn) {
        r = await nodeHash(p, r);
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && same(r, root);
  }

  async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
    if (!(Number.isSafeInteger(oldSize) && Number.isSafeInteger(newSize))) return false;
    if (oldSize < 0 || oldSize > newSize || proof.some((p) => p.length !== 32)) return false;
    if (oldSize === newSize) return proof.length === 0 && same(oldRoot, newRoot);
    if (oldSize === 0) return proof.length === 0;
    if (proof.length === 0) return false;
    const path = proof.slice();
    let power = oldSize;
    while (power % 2 === 0) power /= 2;
    if (power === 1) path.unshift(oldRoot); // oldSize is a power of two
    let fn = oldSize - 1;
    let sn = newSize - 1;
    while (odd(fn)) {
      fn = half(fn);
      sn = half(sn);
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && same(fr, oldRoot) && same(sr, newRoot);
  }

  async function subjectTag(key, index) {
    const hmacKey = await crypto.subtle.importKey(
      "raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"],
    );
    const tag = await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(SUBJECT_CONTEXT + String(index)));
    return hex(tag);
  }

  // A verifier key, NAME+KEYID+BASE64(0x01 || Ed25519 public key), its id checked.
  async function parseVkey(vkey) {
    const first = vkey.indexOf("+");
    const second = vkey.indexOf("+", first + 1);
    if (first < 1 || second < 0) throw new Error("not a verifier key (name+id+key)");
    const name = vkey.slice(0, first);
    const idHex = vkey.slice(first + 1, second).toLowerCase();
    const raw = unbase64(vkey.slice(second + 1));
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 verifier key");
    const keyId = (await sha256(concat(encoder.encode(name + "\n"), raw))).slice(0, 4);
    if (hex(keyId) !== idHex) throw new Error("the verifier key's id does not match its name and key");
    return { name, keyId, publicKey: raw.slice(1) };
  }

  // Whether this browser's WebCrypto verifies Ed25519 signatures (null: it cannot).
  async function ed25519Verify(publicKey, message, signature) {
    let key;
    try {
      key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (error) {
      return null;
    }
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  // The checkpoint in a signed note: {origin, size, root, signature}, where signature is
  // "verified" or "unsupported" (no Ed25519 here); throws with the reason if it does not hold.
  async function openCheckpoint(note, vkey) {
    const { name, keyId, publicKey } = await parseVkey(vkey);
    const cut = note.lastIndexOf("\n\n");
    if (cut < 0 || !note.endsWith("\n")) throw new Error("not a signed note");
    const text = note.slice(0, cut + 1);
    const lines = note.slice(cut + 2, -1).split("\n");
    let signature = null;
    for (const line of lines) {
      if (!line.startsWith("\u2014 ")) throw new Error("not a signature line");
      const space = line.indexOf(" ", 2);
      const blob = unbase64(line.slice(space + 1));
      if (line.slice(2, space) === name && same(blob.slice(0, 4), keyId)) {
        signature = blob.slice(4);
        break;
      }
    }
    if (signature === null) throw new Error(`the checkpoint is not signed by ${name}`);
    const verified = await ed25519Verify(publicKey, encoder.encode(text), signature);
    if (verified === false) throw new Error(`the signature by ${name} does not verify`);
    const [origin, sizeText, rootText, ...rest] = text.split("\n");
    if (origin !== name) throw new Error(`the checkpoint's origin ${origin} is not the signer's log`);
    if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new Error("the checkpoint's size is not a number");
    const root = unbase64(rootText);
    if (root.length !== 32) throw new Error("the checkpoint's root is not 32 bytes");
    return {
      origin,
      size: Number(sizeText),
      root,
      extensions: rest.slice(0, -1),
      signature: verified === null ? "unsupported" : "verified",
    };
  }

  function bit(key, depth) {
    return (key[Math.floor(depth / 8)] >> (7 - (depth % 8))) & 1;
  }

  function bigEndian8(n) {
    const out = new Uint8Array(8);
    let rest = n;
    for (let i = 7; i >= 0; i -= 1) {
      out[i] = rest % 256;
      rest = Math.floor(rest / 256);
    }
    return out;
  }

  // Whether the entries shown ([{index, leafHash}]) are all the checkpoint's people map commits
  // to for this person: null when the checkpoint carries no map; otherwise {problems, count,
  // signature} where signature is "verified" or "unsupported" (no Ed25519 in this browser).
  async function completenessProblems(proof, checkpoint, key, shown) {
    const line = (checkpoint.extensions || []).find((l) => l.startsWith(`${MAP_FORMAT} `));
    if (!line) return null;
    const words = line.split(" ");
    if (words.length !== 3) return { problems: ["the checkpoint's people-map line is malformed"] };
    const mapRoot = unbase64(words[1]);
    const functionKey = unbase64(words[2]);
    if (!proof) return { problems: ["the checkpoint commits to a people map but the bundle has no proof"] };
    const hmacKey = await crypto.subtle.importKey(
      "raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"],
    );
    const lookup = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(LOOKUP_CONTEXT))).slice(0, 16);
    if (proof.lookup !== hex(lookup)) return { problems: ["the proof is for someone else"] };
    const signature = unhex(proof.vuf_proof);
    const message = await sha256(concat(encoder.encode(VUF_CONTEXT), lookup));
    const verified = await ed25519Verify(functionKey, message, signature);
    if (verified === false) return { problems: ["your place in the map is not proved by the log's key"] };
    const mapKey = await sha256(concat(encoder.encode(VUF_OUTPUT_CONTEXT), signature));
    if (proof.key !== hex(mapKey)) return { problems: ["your place in the map is not the one its proof gives"] };
    const siblings = proof.siblings.map(unhex);
    if (siblings.length < MAP_TOP || siblings.length > 256) return { problems: ["the map path has an impossible length"] };
    let count = 0;
    let head = new Uint8Array(32);
    let hashed = new Uint8Array(32);
    if (proof.other) {
      const otherKey = unhex(proof.other.key);
      for (let d = 0; d < siblings.length; d += 1) {
        if (bit(otherKey, d) !== bit(mapKey, d)) return { problems: ["the absence proof is not on your path"] };
      }
      if (same(otherKey, mapKey)) return { problems: ["the absence proof ends at your own place"] };
      hashed = await sha256(concat(Uint8Array.of(0), otherKey, unhex(proof.other.value)));
    } else if (proof.count > 0) {
      count = proof.count;
      head = unhex(proof.head);
      const value = await sha256(concat(bigEndian8(count), head));
      hashed = await sha256(concat(Uint8Array.of(0), mapKey, value));
    }
    for (let depth = siblings.length - 1; depth >= 0; depth -= 1) {
      hashed = bit(mapKey, depth) ? await nodeHash(siblings[depth], hashed) : await nodeHash(hashed, siblings[depth]);
    }
    if (!same(hashed, mapRoot)) return { problems: ["your place in the map is not under the checkpoint's map root"] };
    const ordered = shown.slice().sort((a, b) => a.index - b.index);
    let chained = new Uint8Array(32);
    for (const entry of ordered) {
      chained = await sha256(concat(Uint8Array.of(3), chained, bigEndian8(entry.index), unhex(entry.leafHash)));
    }
    const problems = [];
    if (count !== ordered.length) {
      problems.push(`the checkpoint commits to ${count} entries about you, but ${ordered.length} are listed: the list is not the whole list`);
    } else if (!same(chained, head)) {
      problems.push("the entries listed are not the ones the checkpoint commits to");
    }
    return { problems, count, signature: verified === null ? "unsupported" : "verified" };
  }

  // Every problem with one entry of a proof bundle under an opened checkpoint (none: it holds).
  async function entryProblems(entry, checkpoint, key) {
    const problems = [];
    const data = encoder.encode(entry.leaf);
    const hashed = await leafHash(data);
    if (hex(hashed) !== entry.leaf_hash) problems.push("the leaf does not hash to its leaf hash");
    let proof;
    try {
      proof = entry.inclusion_proof.map(unhex);
    } catch (error) {
      return [...problems, "the inclusion proof is not hex"];
    }
    if (!(await verifyInclusion(hashed, entry.index, checkpoint.size, proof, checkpoint.root))) {
      problems.push(`not included under the checkpoint of ${checkpoint.size} entries`);
    }
    let leaf = {};
    try {
      leaf = JSON.parse(entry.leaf);
    } catch (error) {
      problems.push("the leaf is not JSON");
    }
    if (!(await isSubject(leaf, await subjectTag(key, entry.index), entry.subject_proof))) {
      problems.push("the entry does not carry your tag: it is not about you");
    }
    return problems;
  }

  // Whether a leaf is about the person whose subject tag (hex) is given: listed in its subjects,
  // or, for a leaf about many people that holds only subjects_count and subjects_root, proved by
  // the entry's subject_proof: the tag's position and RFC 9162 inclusion path in the Merkle tree
  // over the leaf's sorted tags (each tag's 32 bytes one leaf of that tree).
  async function isSubject(leaf, tag, proof) {
    if (!("subjects_root" in leaf)) return (leaf.subjects || []).includes(tag);
    if (!proof || !Array.isArray(proof.path)) return false;
    let root;
    let path;
    try {
      root = unhex(leaf.subjects_root);
      path = proof.path.map(unhex);
    } catch (error) {
      return false;
    }
    if (root.length !== 32) return false;
    return verifyInclusion(await leafHash(unhex(tag)), proof.position, leaf.subjects_count, path, root);
  }

  window.AccordLedger = {
    hex,
    unhex,
    leafHash,
    nodeHash,
    verifyInclusion,
    verifyConsistency,
    subjectTag,
    isSubject,
    openCheckpoint,
    entryProblems,
    completenessProblems,
  };
})();
