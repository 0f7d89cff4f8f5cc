// Builds the npm package @hub-realtime/client into dist/: hub.js, the very file the hub serves at /hub.js
// (hub/static/hub.js, copied byte for byte: that file is the one source), and hub.d.ts, made from its JSDoc by tsc.
// tsc type-checks hub.js as it goes (checkJs), so JSDoc that disagrees with the code fails the build.
//
//   node build.mjs           build dist/ (npm run build; npm pack runs it too)
//   node build.mjs --check   build, then type-check examples/typed.ts (strict) against dist/ and the channel
//                            types in examples/hub-channels.d.ts (`hub schema --format typescript` writes them)
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, "..", "hub", "static", "hub.js");
const dist = join(here, "dist");
// typescript is a devDependency of the repository's package.json (one node_modules for the whole repo)
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

function run(args) {
  const result = spawnSync(process.execPath, [tsc, ...args], { cwd: here, stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`build: tsc ${args.join(" ")} failed`);
    process.exit(result.status ?? 1);
  }
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
copyFileSync(source, join(dist, "hub.js"));
run(["--project", "tsconfig.json"]);

if (process.argv.includes("--check")) {
  if (!existsSync(join(here, "examples", "hub-channels.d.ts"))) {
    console.error("build: write examples/hub-channels.d.ts first: hub schema --format typescript > examples/hub-channels.d.ts");
    process.exit(2);
  }
  run(["--project", join("examples", "tsconfig.json")]);
}
