#!/usr/bin/env node
// Draws the extension's icon, media/icon.png (128x128 RGBA): a play triangle inside the
// walls of a cell, in Python's blue and yellow. Node's standard library only; the output is
// the same bytes on every run, so the committed PNG can be checked against this script.
//
//   node scripts/make-icon.mjs [OUT]      (default: media/icon.png beside this folder)
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const SIZE = 128;
const SS = 4; // samples per pixel along each axis (anti-aliasing)
const BLUE = [48, 105, 152];
const YELLOW = [255, 212, 59];

/** Inside a square centred in the icon, half-width h, corner radius r. */
function inRoundedSquare(x, y, h, r) {
  const c = SIZE / 2;
  const dx = Math.max(Math.abs(x - c) - (h - r), 0);
  const dy = Math.max(Math.abs(y - c) - (h - r), 0);
  return dx * dx + dy * dy <= r * r;
}

/** Inside the play triangle pointing right, centred a little right of the middle. */
function inTriangle(x, y) {
  const [ax, ay, bx, by, cx, cy] = [50, 40, 50, 88, 90, 64];
  const side = (px, py, qx, qy) => (qx - px) * (y - py) - (qy - py) * (x - px);
  const d1 = side(ax, ay, bx, by);
  const d2 = side(bx, by, cx, cy);
  const d3 = side(cx, cy, ax, ay);
  return (d1 <= 0 && d2 <= 0 && d3 <= 0) || (d1 >= 0 && d2 >= 0 && d3 >= 0);
}

/** The colour of one sample, or null outside the icon (transparent). */
function sample(x, y) {
  if (!inRoundedSquare(x, y, 62, 22)) return null;
  const wall = inRoundedSquare(x, y, 46, 12) && !inRoundedSquare(x, y, 39, 6);
  return wall || inTriangle(x, y) ? YELLOW : BLUE;
}

export function iconPixels() {
  const rgba = Buffer.alloc(SIZE * SIZE * 4);
  for (let py = 0; py < SIZE; py++) {
    for (let px = 0; px < SIZE; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const c = sample(px + (sx + 0.5) / SS, py + (sy + 0.5) / SS);
          if (!c) continue;
          r += c[0];
          g += c[1];
          b += c[2];
          a++;
        }
      }
      const o = (py * SIZE + px) * 4;
      if (a) {
        rgba[o] = Math.round(r / a);
        rgba[o + 1] = Math.round(g / a);
        rgba[o + 2] = Math.round(b / a);
        rgba[o + 3] = Math.round((255 * a) / (SS * SS));
      }
    }
  }
  return rgba;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

export function iconPng() {
  const rgba = iconPixels();
  const raw = Buffer.alloc(SIZE * (SIZE * 4 + 1));
  for (let y = 0; y < SIZE; y++) {
    raw[y * (SIZE * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (SIZE * 4 + 1) + 1, y * SIZE * 4, (y + 1) * SIZE * 4);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(SIZE, 0);
  ihdr.writeUInt32BE(SIZE, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? fileURLToPath(new URL("../media/icon.png", import.meta.url));
  writeFileSync(out, iconPng());
  console.log(`wrote ${out}`);
}
