// Bulwark console: checks an audit event's inclusion proof in the browser, so the reader need
// not take the server's word. WebCrypto only: SHA-256 (RFC 9162 Merkle hashing) and Ed25519
// (the checkpoint's C2SP signed note). Reads its inputs from #proof's data attributes.
"use strict";
(function () {
  function b64(s) {
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }
  function concat(parts) {
    var n = 0, i, off = 0;
    for (i = 0; i < parts.length; i++) { n += parts[i].length; }
    var out = new Uint8Array(n);
    for (i = 0; i < parts.length; i++) { out.set(parts[i], off); off += parts[i].length; }
    return out;
  }
  function sha256(bytes) {
    return crypto.subtle.digest("SHA-256", bytes).then(function (d) { return new Uint8Array(d); });
  }
  function equal(a, b) {
    if (a.length !== b.length) { return false; }
    var diff = 0;
    for (var i = 0; i < a.length; i++) { diff |= a[i] ^ b[i]; }
    return diff === 0;
  }
  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  // RFC 9162 §2.1.3.2.
  async function rootFromPath(leaf, index, size, path) {
    if (index >= size) { throw new Error("index beyond the tree"); }
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < path.length; i++) {
      if (sn === 0) { throw new Error("proof too long"); }
      if ((fn & 1) === 1 || fn === sn) {
        r = await sha256(concat([new Uint8Array([1]), path[i], r]));
        if ((fn & 1) === 0) {
          while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await sha256(concat([new Uint8Array([1]), r, path[i]]));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) { throw new Error("proof too short"); }
    return r;
  }
  // C2SP signed note: text, a blank line, signature lines "— <name> <base64(key id ‖ sig)>".
  async function verifyNote(note, verifierKey) {
    // name+keyid+base64: the base64 may hold "+" itself, so split at the first two only.
    var first = verifierKey.indexOf("+");
    var second = first < 0 ? -1 : verifierKey.indexOf("+", first + 1);
    if (first < 1 || second < 0) { throw new Error("malformed verifier key"); }
    var name = verifierKey.slice(0, first), keyId = verifierKey.slice(first + 1, second);
    var raw = b64(verifierKey.slice(second + 1));
    if (raw.length !== 33 || raw[0] !== 1) { throw new Error("not an Ed25519 verifier key"); }
    var enc = new TextEncoder();
    var expectedId = hex((await sha256(concat([enc.encode(name), new Uint8Array([10, 1]), raw.slice(1)]))).slice(0, 4));
    if (expectedId !== keyId) { throw new Error("verifier key id does not match its key"); }
    var split = note.indexOf("\n\n");
    if (split < 0) { throw new Error("note has no signature block"); }
    var text = note.slice(0, split + 1);
    var lines = note.slice(split + 2).split("\n").filter(function (l) { return l.length > 0; });
    var key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    for (var i = 0; i < lines.length; i++) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(lines[i]);
      if (!m || m[1] !== name) { continue; }
      var sig = b64(m[2]);
      if (sig.length !== 68 || hex(sig.slice(0, 4)) !== keyId) { continue; }
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, sig.slice(4), enc.encode(text))) {
        return text;
      }
      throw new Error("the signature does not verify");
    }
    throw new Error("no signature by this key");
  }
  async function check(el) {
    var canonical = b64(el.getAttribute("data-canonical"));
    var index = Number(el.getAttribute("data-index"));
    var size = Number(el.getAttribute("data-size"));
    var pathAttr = el.getAttribute("data-path").trim();
    var path = pathAttr === "" ? [] : pathAttr.split(" ").map(b64);
    var text = await verifyNote(el.getAttribute("data-note"), el.getAttribute("data-key"));
    var body = text.split("\n");
    if (Number(body[1]) !== size) { throw new Error("the signed tree size is not the proof's"); }
    var signedRoot = b64(body[2]);
    var leaf = await sha256(concat([new Uint8Array([0]), canonical]));
    var root = await rootFromPath(leaf, index, size, path);
    if (!equal(root, signedRoot)) { throw new Error("the proof leads to another root"); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("proof");
    var out = document.getElementById("browser-check");
    if (!el || !out) { return; }
    out.textContent = "Your browser's check: running…";
    check(el).then(function () {
      out.className = "ok";
      out.setAttribute("data-result", "verified");
      out.textContent = "Your browser's check: verified. SHA-256 of the event, the path and the Ed25519 signature of the checkpoint all agree.";
    }, function (e) {
      out.className = "bad";
      out.setAttribute("data-result", "failed");
      out.textContent = "Your browser's check FAILED: " + e.message;
    });
  });
})();
