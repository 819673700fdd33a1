// `vsce package` makes a .vsix from the built extension with no network beyond what
// `npm ci` fetched: the manifest, the compiled code and the runtime dependency go in;
// sources, tests and dev dependencies stay out. Needs `npm run build` first (ctest's
// vscode_build fixture does it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { inflateRawSync, inflateSync } from "node:zlib";
import { createRequire } from "node:module";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = createRequire(import.meta.url)("../package.json");

/** A PNG's size, colour type and (for 8-bit RGBA without interlacing) its pixels. */
function readPng(buf) {
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG signature");
  let p = 8;
  const idat = [];
  let ihdr;
  while (p < buf.length) {
    const len = buf.readUInt32BE(p);
    const type = buf.toString("ascii", p + 4, p + 8);
    const data = buf.subarray(p + 8, p + 8 + len);
    if (type === "IHDR") ihdr = { width: data.readUInt32BE(0), height: data.readUInt32BE(4), depth: data[8], colorType: data[9], interlace: data[12] };
    if (type === "IDAT") idat.push(data);
    p += 12 + len;
  }
  assert.ok(ihdr, "an IHDR chunk");
  let pixels;
  if (ihdr.depth === 8 && ihdr.colorType === 6 && ihdr.interlace === 0) {
    const raw = inflateSync(Buffer.concat(idat));
    const stride = ihdr.width * 4;
    pixels = Buffer.alloc(stride * ihdr.height);
    for (let y = 0; y < ihdr.height; y++) {
      assert.equal(raw[y * (stride + 1)], 0, "rows without a filter, as the icon script writes them");
      raw.copy(pixels, y * stride, y * (stride + 1) + 1, (y + 1) * (stride + 1));
    }
  }
  return { ...ihdr, pixels };
}

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
    // stdin closed: were vsce to ask a question (a missing LICENSE or repository), it fails
    // instead of waiting.
    const r = spawnSync(process.env.PYCELL_NPM || "npm", ["run", "--silent", "vsix", "--", "--out", out], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
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
      "extension/LICENSE.txt",
      "extension/media/icon.png",
      "extension/node_modules/vscode-jsonrpc/package.json",
      "extension/node_modules/vscode-jsonrpc/lib/node/main.js",
    ]) {
      assert.ok(names.includes(want), `${want} in the .vsix (has: ${names.join(", ")})`);
    }
    for (const name of names) {
      assert.doesNotMatch(name, /^extension\/(src|test|scripts)\//, `${name} is left out`);
      assert.doesNotMatch(name, /node_modules\/(typescript|@vscode\/vsce|@types)\//, `${name} is a dev dependency`);
    }
    const manifest = JSON.parse(zip.get("extension/package.json")().toString("utf8"));
    assert.equal(manifest.main, "./out/extension.js");
    assert.ok(manifest.contributes.configuration.properties["pycell.binaryPath"]);
    const vsixManifest = zip.get("extension.vsixmanifest")().toString("utf8");
    assert.match(vsixManifest, /Id="pycell"/);
    assert.match(vsixManifest, /<Icon>extension\/media\/icon\.png<\/Icon>/);
    assert.match(vsixManifest, /<License>extension\/LICENSE\.txt<\/License>/);
    assert.match(vsixManifest, /Links\.Source" Value="https:\/\//);
    const icon = readPng(zip.get("extension/media/icon.png")());
    assert.deepEqual([icon.width, icon.height], [128, 128]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("package.json has the metadata the Marketplace wants, and vsce needs no flag to skip it", () => {
  assert.doesNotMatch(pkg.scripts.vsix, /--allow-missing-repository|--skip-license|--allow-star-activation/);
  assert.equal(typeof pkg.publisher, "string");
  assert.match(pkg.publisher, /^[a-z0-9][a-z0-9-]*$/i, "a valid publisher id");
  assert.match(pkg.license, /^SEE LICENSE IN LICENSE$|^[A-Za-z0-9.+-]+$/);
  assert.ok(existsSync(join(root, "LICENSE")), "the LICENSE file package.json points at");
  assert.match(pkg.repository.url, /^https:\/\/.+\.git$/);
  assert.equal(pkg.repository.directory, "editors/vscode");
  assert.equal(pkg.icon, "media/icon.png");
  // The README names the placeholder publisher as the one to change.
  assert.ok(readFileSync(join(root, "README.md"), "utf8").includes(`"publisher": "${pkg.publisher}"`), "README documents the publisher");
  // No server start when a Python file opens: activation may happen, the server waits.
  assert.ok(!pkg.activationEvents.includes("*"), "not activated at startup");
});

test("the icon is a 128x128 RGBA PNG drawn by scripts/make-icon.mjs", async () => {
  const icon = readPng(readFileSync(join(root, pkg.icon)));
  assert.deepEqual([icon.width, icon.height, icon.depth, icon.colorType], [128, 128, 8, 6]);
  const { iconPixels } = await import("../scripts/make-icon.mjs");
  assert.ok(icon.pixels.equals(iconPixels()), "media/icon.png is what the script draws (run it to update)");
});
