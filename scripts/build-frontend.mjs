// Bundles the npm libraries that plugin panels import into ES modules under plugins/<name>/static/vendor/.
// Run by scripts/setup (npm run build); the output is not committed (.gitignore).
import { build } from "esbuild";

// docedit: everything its panel and provider need, in ONE bundle, so the page holds exactly one instance
// of Yjs (two copies break `instanceof` checks inside Yjs and y-codemirror.next: "Yjs was already imported").
const DOCEDIT = `
export * as Y from "yjs";
export * as awarenessProtocol from "y-protocols/awareness";
export * as syncProtocol from "y-protocols/sync";
export * as encoding from "lib0/encoding";
export * as decoding from "lib0/decoding";
export { Awareness } from "y-protocols/awareness";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars,
  drawSelection, dropCursor, rectangularSelection, crosshairCursor, placeholder,
} from "@codemirror/view";
export { EditorState, Compartment, Prec } from "@codemirror/state";
export { defaultKeymap } from "@codemirror/commands";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
export { IndexeddbPersistence, storeState } from "y-indexeddb";
`;

const bundles = [
  // draw: Fabric.js, the canvas library of the collaborative whiteboard.
  { contents: `export * from "fabric";`, outfile: "plugins/draw/static/vendor/fabric.mjs" },
  // docedit: Yjs, y-protocols, CodeMirror 6 and its Yjs binding (see docs/client.md, "docedit"), and y-indexeddb
  // for the copy kept in the browser (docs/docedit.md, "Offline").
  { contents: DOCEDIT, outfile: "plugins/docedit/static/vendor/docedit.mjs" },
];

for (const { contents, outfile } of bundles) {
  await build({
    stdin: { contents, resolveDir: process.cwd() },
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
