// trunk's post-build hook (Trunk.toml): in release builds, minifies what every page view of
// every customer downloads, in trunk's staging directory: the loader with terser and its
// stylesheet with csso (both pinned in package.json). The sources in loader/ and style/ stay
// as they are, comments and all; only the loader's "/*!" banner is kept.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { minify } from "terser";
import { minify as minifyCss } from "csso";

if (process.env.TRUNK_PROFILE === "release") {
  const file = join(process.env.TRUNK_STAGING_DIR, "speaknode-widget.js");
  const source = await readFile(file, "utf8");
  const { code } = await minify(source, {
    ecma: 2020,
    compress: { passes: 2 },
    mangle: true,
    // Escapes, not raw UTF-8: the loader runs in pages of any encoding.
    format: { comments: /^!/, ascii_only: true },
  });
  await writeFile(file, `${code}\n`);

  // Structural optimisations (merging and moving rules) are off: the cascade between :host
  // rules, media queries and the hostile-page defences stays exactly as written.
  const sheet = join(process.env.TRUNK_STAGING_DIR, "speaknode-widget.css");
  const css = minifyCss(await readFile(sheet, "utf8"), { restructure: false, comments: false });
  await writeFile(sheet, `${css.css}\n`);
}
