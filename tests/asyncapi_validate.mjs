// Validates AsyncAPI documents with the official parser, @asyncapi/parser (it checks the document against the
// AsyncAPI JSON Schema of its version, resolves every $ref, and runs its semantic rules: an operation's messages
// belong to its channel, its reply's to the reply's channel, channel parameters match the address, ...).
//
//   node tests/asyncapi_validate.mjs FILE...
//
// One JSON line per file on stdout: {"file", "valid", "version", "diagnostics": [{"severity", "code", "message",
// "path"}]}. The exit status is 1 when any file has an error-level diagnostic (or does not parse), else 0.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const SEVERITIES = ["error", "warning", "info", "hint"];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"));
  const found = diagnostics.map((d) => ({
    severity: SEVERITIES[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.join("/"),
  }));
  const valid = document !== undefined && !found.some((d) => d.severity === "error");
  failed ||= !valid;
  console.log(JSON.stringify({ file, valid, version: document?.version() ?? null, diagnostics: found }));
}
process.exit(failed ? 1 : 0);
