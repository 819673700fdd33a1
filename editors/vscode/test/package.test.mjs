// `vsce package` makes a .vsix from the built extension with no network beyond what
// `npm ci` fetched: the manifest, the compiled code and the runtime dependency go in;
// sources, tests and dev dependencies stay out. Needs `npm run build` first (ctest's
// vscode_build fixture does it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { inflateRawSync } from "node:zlib";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The entries of a zip file: name -> () => contents. */
function readZip(buf) {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  assert.ok(eocd >= 0, "a zip file");
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries = new Map();
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(p), 0x02014b50, "a central directory entry");
    const method = buf.readUInt16LE(p + 10);
    const size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString("utf8", p + 46, p + 46 + nameLen);
    entries.set(name, () => {
      const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
      const data = buf.subarray(start, start + size);
      return method === 8 ? inflateRawSync(data) : data;
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

test("vsce packages the extension into a .vsix", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pycell-vsix-"));
  try {
    const out = join(dir, "pycell.vsix");
    const r = spawnSync(process.env.PYCELL_NPM || "npm", ["run", "--silent", "vsix", "--", "--out", out], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, `vsce failed:\n${r.stdout}\n${r.stderr}`);
    const zip = readZip(readFileSync(out));
    const names = [...zip.keys()];
    for (const want of [
      "extension.vsixmanifest",
      "extension/package.json",
      "extension/readme.md",
      "extension/out/extension.js",
      "extension/out/client.js",
      "extension/out/figures.js",
      "extension/node_modules/vscode-jsonrpc/package.json",
      "extension/node_modules/vscode-jsonrpc/lib/node/main.js",
    ]) {
      assert.ok(names.includes(want), `${want} in the .vsix (has: ${names.join(", ")})`);
    }
    for (const name of names) {
      assert.doesNotMatch(name, /^extension\/(src|test)\//, `${name} is left out`);
      assert.doesNotMatch(name, /node_modules\/(typescript|@vscode\/vsce|@types)\//, `${name} is a dev dependency`);
    }
    const manifest = JSON.parse(zip.get("extension/package.json")().toString("utf8"));
    assert.equal(manifest.main, "./out/extension.js");
    assert.ok(manifest.contributes.configuration.properties["pycell.binaryPath"]);
    const vsixManifest = zip.get("extension.vsixmanifest")().toString("utf8");
    assert.match(vsixManifest, /Id="pycell"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
