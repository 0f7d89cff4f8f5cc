// Bundles the npm libraries that plugin panels import into ES modules under plugins/<name>/static/vendor/.
// Run by scripts/setup (npm run build); the output is not committed (.gitignore).
import { build } from "esbuild";

const bundles = [
  // draw: Fabric.js, the canvas library of the collaborative whiteboard.
  { entry: "fabric", outfile: "plugins/draw/static/vendor/fabric.mjs" },
];

for (const { entry, outfile } of bundles) {
  await build({
    stdin: { contents: `export * from ${JSON.stringify(entry)};`, resolveDir: process.cwd() },
    bundle: true,
    format: "esm",
    minify: true,
    sourcemap: false,
    target: "es2020",
    platform: "browser",
    outfile,
    logLevel: "warning",
  });
  console.log(`built ${outfile}`);
}
