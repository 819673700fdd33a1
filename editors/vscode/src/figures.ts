// The figures webview's HTML, from an execution's `displays` (mime bundles). No `vscode`
// import, so node's test runner can check it on its own.

import type { MimeBundle } from "./client";

export interface Figure {
  /** A `data:` URI for an <img>. */
  src: string;
  /** The bundle's text/plain, e.g. `<Figure size 640x480 with 1 Axes>`. */
  caption: string;
}

const BASE64 = /^[A-Za-z0-9+/=\r\n]+$/;

/** The images among the displays: PNG (base64) and SVG (text), in order. */
export function figuresOf(displays: MimeBundle[] | undefined): Figure[] {
  const out: Figure[] = [];
  for (const d of displays ?? []) {
    if (!d || typeof d !== "object") continue;
    const caption = typeof d["text/plain"] === "string" ? d["text/plain"] : "";
    const png = d["image/png"];
    const svg = d["image/svg+xml"];
    if (typeof png === "string" && BASE64.test(png)) {
      out.push({ src: `data:image/png;base64,${png.replace(/[\r\n]/g, "")}`, caption });
    } else if (typeof svg === "string") {
      // As an <img>, an SVG cannot run scripts.
      out.push({ src: `data:image/svg+xml;base64,${Buffer.from(svg, "utf8").toString("base64")}`, caption });
    }
  }
  return out;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A page showing the figures, with a Content-Security-Policy that allows nothing but them. */
export function figuresHtml(title: string, figures: Figure[]): string {
  const items = figures
    .map(
      (f, i) =>
        `<figure><img src="${f.src}" alt="${escapeHtml(f.caption || `figure ${i + 1}`)}">` +
        `<figcaption>${escapeHtml(f.caption || `figure ${i + 1}`)}</figcaption></figure>`,
    )
    .join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline';">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 1em; }
  h1 { font-size: 1.1em; font-weight: 600; }
  figure { margin: 1em 0; }
  img { max-width: 100%; height: auto; background: white; }
  figcaption { font-size: 0.9em; opacity: 0.8; font-family: var(--vscode-editor-font-family); }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${items}
</body>
</html>
`;
}
