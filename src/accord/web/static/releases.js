// "Where my data went": checks, in the browser, the proof of every entry on the page (from the
// same bundle the page offers to download), the checkpoint's signature, and that the log only
// grew since the checkpoint this browser saw last (kept in the accord_seen cookie), or since the
// one of the size in ?since=N; and that the entries listed are all there are (the people map the
// checkpoint commits to: an entry left out of the list fails).
"use strict";

(() => {
  const SEEN = "accord_seen";
  const check = document.getElementById("check");
  const status = document.getElementById("check-status");
  const consistency = document.getElementById("consistency");
  const completeness = document.getElementById("completeness");
  if (!check || !status) return;
  const rows = Array.from(document.querySelectorAll("li.entry[data-index]"));

  function mark(row, state, text) {
    const badge = row.querySelector(".proof-state");
    badge.dataset.state = state;
    badge.textContent = text;
  }

  function say(element, state, text) {
    element.dataset.state = state;
    element.textContent = text;
  }

  function readSeen() {
    const found = document.cookie.split("; ").find((c) => c.startsWith(`${SEEN}=`));
    if (!found) return null;
    const [size, root] = found.slice(SEEN.length + 1).split(":");
    if (!/^\d+$/.test(size) || !/^[0-9a-f]{64}$/.test(root || "")) return null;
    return { size: Number(size), root: window.AccordLedger.unhex(root) };
  }

  function remember(checkpoint) {
    const secure = location.protocol === "https:" ? "; secure" : "";
    document.cookie = `${SEEN}=${checkpoint.size}:${window.AccordLedger.hex(checkpoint.root)}; ` +
      `path=/me; max-age=31536000; samesite=strict${secure}`;
  }

  async function json(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error((body && body.detail) || `the server answered ${response.status}`);
    return body;
  }

  async function checkConsistency(checkpoint, vkey) {
    const L = window.AccordLedger;
    let old;
    let from;
    if (check.dataset.since !== undefined) {
      const stored = await json(`/v1/ledger/checkpoint?size=${encodeURIComponent(check.dataset.since)}`);
      const opened = await L.openCheckpoint(stored.note, vkey);
      old = { size: opened.size, root: opened.root };
      from = `the signed checkpoint of ${old.size} entries you asked to compare with`;
    } else {
      old = readSeen();
      from = old && `the checkpoint this browser saw last (${old.size} entries)`;
    }
    if (!old) {
      say(consistency, "first", "This is the first checkpoint this browser has seen. It is " +
        "remembered, so your next visit checks that the log only grew since.");
      return true;
    }
    if (old.size > checkpoint.size) {
      say(consistency, "failed", `Does not verify: the log is smaller now (${checkpoint.size} ` +
        `entries) than ${from}. A log that shrinks has rewritten its past.`);
      return false;
    }
    let proof = [];
    if (old.size < checkpoint.size) {
      const answer = await json(`/v1/ledger/consistency?old=${old.size}&new=${checkpoint.size}`);
      proof = answer.proof.map(L.unhex);
    }
    const holds = await L.verifyConsistency(old.size, checkpoint.size, old.root, checkpoint.root, proof);
    if (holds) {
      say(consistency, "verified", `Consistent: the log of ${checkpoint.size} entries extends ` +
        `${from}; nothing in it was changed or taken out.`);
    } else {
      say(consistency, "failed", `Does not verify: the log of ${checkpoint.size} entries is not ` +
        `an extension of ${from}.`);
    }
    return holds;
  }

  async function checkCompleteness(bundle, checkpoint, key, proved) {
    const L = window.AccordLedger;
    const shown = proved.map((row) => ({ index: Number(row.dataset.index), leafHash: row.dataset.leafHash }));
    const result = await L.completenessProblems(bundle.completeness, checkpoint, key, shown);
    if (result === null) {
      say(completeness, "none", "This checkpoint was signed before the log committed to each " +
        "person's entries, so whether the list is complete cannot be checked yet.");
      return;
    }
    if (result.problems.length) {
      say(completeness, "failed", `Something is missing: ${result.problems.join("; ")}.`);
      say(status, "failed", "Does not verify: the list of entries about you is not the one " +
        `the checkpoint of ${checkpoint.size} entries commits to.`);
      return;
    }
    const by = result.signature === "verified" ? "" : " (this browser cannot check the " +
      "Ed25519 signature of your place in the map; verify_proof.py can)";
    say(completeness, "verified", `Nothing hidden: the checkpoint of ${checkpoint.size} entries ` +
      `commits to exactly ${result.count} entr${result.count === 1 ? "y" : "ies"} about you, and ` +
      `they are the ones listed here${by}.`);
  }

  async function run() {
    const L = window.AccordLedger;
    const proved = rows.filter((row) => row.dataset.proved === "true");
    if (!check.dataset.vkey) return;
    if (!window.crypto || !crypto.subtle || !L) {
      say(status, "unsupported", "This browser cannot check the proofs here (WebCrypto needs a " +
        "secure connection). Download the proof bundle and check it with verify_proof.py.");
      proved.forEach((row) => mark(row, "unchecked", "Not checked by this browser"));
      return;
    }
    let bundle;
    try {
      bundle = await json(check.dataset.bundle);
    } catch (error) {
      say(status, "failed", `The proof bundle could not be read: ${error.message}`);
      proved.forEach((row) => mark(row, "failed", "Does not verify: no proof could be read"));
      return;
    }
    const vkey = check.dataset.vkey;
    let checkpoint = null;
    let failure = null;
    try {
      if (bundle.vkey !== vkey) throw new Error("the bundle is signed by another key than this page names");
      checkpoint = await L.openCheckpoint(bundle.checkpoint, vkey);
      if (L.hex(checkpoint.root) !== bundle.root || checkpoint.size !== bundle.tree_size) {
        throw new Error("the bundle's root is not the one its checkpoint states");
      }
    } catch (error) {
      failure = `the checkpoint: ${error.message}`;
    }
    const byIndex = new Map((bundle.entries || []).map((e) => [e.index, e]));
    let key = null;
    try {
      key = L.unhex(bundle.person.key);
    } catch (error) {
      failure = failure || "the bundle holds no key of yours";
    }
    let good = 0;
    for (const row of proved) {
      const entry = byIndex.get(Number(row.dataset.index));
      let problems;
      if (failure) problems = [failure];
      else if (!entry) problems = ["the bundle holds no proof of this entry"];
      else {
        problems = await L.entryProblems(entry, checkpoint, key);
        if (entry.leaf_hash !== row.dataset.leafHash) problems.push("the proof is of another entry than this page shows");
      }
      if (problems.length === 0) {
        good += 1;
        mark(row, "verified", "Verified");
      } else {
        mark(row, "failed", `Does not verify: ${problems.join("; ")}`);
      }
    }
    const bad = proved.length - good;
    if (failure) {
      say(status, "failed", `Does not verify: ${failure}.`);
    } else if (bad) {
      say(status, "failed", `${bad} of ${proved.length} entries do not verify under the ` +
        `checkpoint of ${checkpoint.size} entries.`);
    } else {
      const signed = checkpoint.signature === "verified"
        ? `signed by ${checkpoint.origin} (signature checked)`
        : "whose Ed25519 signature this browser cannot check (check it with verify_proof.py)";
      say(status, "verified", `All ${proved.length} entries verify: each is in the log, under the ` +
        `checkpoint of ${checkpoint.size} entries ${signed}, and each carries your tag.`);
    }
    if (checkpoint && !failure && completeness) {
      try {
        await checkCompleteness(bundle, checkpoint, key, proved);
      } catch (error) {
        say(completeness, "failed", `Could not check that the list is complete: ${error.message}`);
        say(status, "failed", "Does not verify: the list's completeness could not be checked.");
      }
    }
    if (checkpoint && !failure && consistency) {
      try {
        if (await checkConsistency(checkpoint, vkey)) remember(checkpoint);
      } catch (error) {
        say(consistency, "failed", `The consistency proof could not be checked: ${error.message}`);
      }
    }
  }

  run();
})();
