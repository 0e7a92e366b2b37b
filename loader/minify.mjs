// trunk's post-build hook (Trunk.toml): in release builds, minifies the loader trunk copied
// into its staging directory with terser (pinned in package.json), since every page view of
// every customer downloads it. The source in loader/ stays as it is, comments and all; only
// the "/*!" banner is kept.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { minify } from "terser";

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
}
