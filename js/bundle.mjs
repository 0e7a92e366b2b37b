// trunk's build hook (Trunk.toml): bundles the voice bridge (js/voice-bridge.mjs) with
// livekit-client from node_modules into app/voice.mjs in trunk's staging directory, where the
// widget's wasm imports it at call start. It runs beside cargo (trunk's `build` stage), in
// debug and release builds alike, offline: esbuild and the SDK come from `npm ci`.
//
// Nothing is written into the source tree. Run by hand, it takes the output directory as its
// argument instead: `node js/bundle.mjs <dir>` writes <dir>/voice.mjs.
//
// Next to the bundle goes voice.mjs.LEGAL.txt: the licence texts of livekit-client and of
// everything its self-contained build inlines (Apache-2.0 asks for the licence to travel
// with the code; the SDK's dist keeps no licence comments for esbuild to collect).
import { build } from "esbuild";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = process.argv[2]
  ? resolve(process.argv[2])
  : join(process.env.TRUNK_STAGING_DIR ?? "", "app");
if (!process.argv[2] && !process.env.TRUNK_STAGING_DIR) {
  throw new Error("run by trunk (TRUNK_STAGING_DIR) or give an output directory");
}
const outfile = join(outDir, "voice.mjs");
const legalFile = `${outfile}.LEGAL.txt`;

await mkdir(outDir, { recursive: true });
await rm(legalFile, { force: true });
await build({
  absWorkingDir: root,
  entryPoints: ["js/voice-bridge.mjs"],
  bundle: true,
  minify: true,
  format: "esm",
  // esbuild writes voice.mjs.LEGAL.txt only when the sources keep licence comments; they
  // go after the licence texts.
  legalComments: "external",
  outfile,
  logLevel: "warning",
});
const comments = existsSync(legalFile) ? readFileSync(legalFile, "utf8") : "";
await writeFile(
  legalFile,
  licences("livekit-client") +
    (comments ? `\n${"=".repeat(78)}\n\nLicence comments kept from the sources\n\n${comments}` : ""),
);

/**
 * The licence texts of `name` and of its runtime dependencies, recursively, as found in
 * node_modules (each package's LICENSE*, LICENCE*, NOTICE*, COPYING* and CopyrightNotice
 * files; a package that ships none is listed with its declared licence).
 */
function licences(name) {
  const seen = new Set();
  const sections = [];
  const visit = (pkg, from) => {
    const dir = locate(pkg, from);
    if (dir === null || seen.has(dir)) return;
    seen.add(dir);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const files = readdirSync(dir)
      .filter((file) => /^(licen[cs]e|notice|copying|copyrightnotice)/i.test(file))
      .sort();
    const texts = files.map((file) => readFileSync(join(dir, file), "utf8").trim());
    sections.push(
      [
        `${manifest.name} ${manifest.version} (${manifest.license ?? "no licence declared"})`,
        texts.length > 0
          ? texts.join("\n\n")
          : "The npm package ships no licence file; its declared licence is named above.",
      ].join("\n\n"),
    );
    for (const dependency of Object.keys(manifest.dependencies ?? {}).sort()) visit(dependency, dir);
  };
  visit(name, root);
  return `${sections.join(`\n\n${"=".repeat(78)}\n\n`)}\n`;
}

/** Node's lookup: `<dir>/node_modules/<pkg>`, then the same from each parent directory. */
function locate(pkg, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", pkg);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) return null;
  }
}
