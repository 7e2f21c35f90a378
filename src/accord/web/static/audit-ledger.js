// The auditor's console, "Check that the log only grew": asks the server for the consistency
// proof between two tree sizes and checks it in the page with ledger-proofs.js (WebCrypto,
// RFC 9162 section 2.1.4.2), each size's root taken from its signed checkpoint where one is stored
// (its Ed25519 signature checked where the browser can).
"use strict";

(() => {
  const result = document.getElementById("consistency-result");
  if (!result) return;

  function say(state, text) {
    result.dataset.state = state;
    result.textContent = text;
  }

  async function json(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error((body && body.detail) || `the server answered ${response.status}`);
    return body;
  }

  // The root of one size: from its signed checkpoint if stored, else as the server states it.
  async function rootOf(L, size, note, stated, vkey) {
    if (note && vkey) {
      const opened = await L.openCheckpoint(note, vkey);
      if (opened.size !== size) throw new Error(`the checkpoint of ${size} entries states ${opened.size}`);
      if (L.hex(opened.root) !== stated) throw new Error(`the root of ${size} entries is not the one its checkpoint signs`);
      return { root: opened.root, how: opened.signature === "verified" ? "signed" : "unchecked" };
    }
    return { root: L.unhex(stated), how: "unsigned" };
  }

  async function run() {
    const L = window.AccordLedger;
    const oldSize = Number(result.dataset.old);
    const newSize = Number(result.dataset.new);
    if (!window.crypto || !crypto.subtle || !L) {
      say("unsupported", "This browser cannot check the proof here (WebCrypto needs a secure " +
        "connection). Fetch it from the consistency endpoint and check it with verify_proof.py.");
      return;
    }
    if (oldSize > newSize) {
      say("failed", `The earlier size (${oldSize}) is larger than the later one (${newSize}): ` +
        "pick the smaller size first.");
      return;
    }
    let answer;
    try {
      answer = await json(`/v1/ledger/consistency?old=${oldSize}&new=${newSize}`);
    } catch (error) {
      say("failed", `No proof could be had: ${error.message}`);
      return;
    }
    const vkey = result.dataset.vkey;
    try {
      const older = await rootOf(L, oldSize, answer.old_checkpoint, answer.old_root, vkey);
      const newer = await rootOf(L, newSize, answer.new_checkpoint, answer.new_root, vkey);
      const proof = answer.proof.map(L.unhex);
      const holds = await L.verifyConsistency(oldSize, newSize, older.root, newer.root, proof);
      if (!holds) {
        say("failed", `Does not verify: the proof does not show the log of ${newSize} entries ` +
          `extending the log of ${oldSize} entries.`);
        return;
      }
      const sources = [older, newer].map((r, i) => {
        const size = i === 0 ? oldSize : newSize;
        if (r.how === "signed") return `${size} entries (signed checkpoint, signature checked)`;
        if (r.how === "unchecked") return `${size} entries (signed checkpoint; this browser cannot check Ed25519)`;
        return `${size} entries (no checkpoint of that size is signed: root as the server states it)`;
      });
      say("verified", `Consistent: the log of ${sources[1]} extends the log of ${sources[0]}; ` +
        "nothing in the earlier log was changed or taken out.");
    } catch (error) {
      say("failed", `Does not verify: ${error.message}.`);
    }
  }

  run();
})();
