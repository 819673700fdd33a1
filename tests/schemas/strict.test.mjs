// Every JSON Schema in schemas/ compiles with ajv 8 in strict mode (draft 2020-12), no
// option relaxed: what a strict validator in a client refuses, the project refuses first.
// The tool definitions in schemas/tools carry their input schema inside (not a JSON Schema
// file of their own): that inner schema is compiled the same way.
//
// Run: node --test strict.test.mjs [schemas directory] (default: ../../schemas), or with
// PYCELL_SCHEMAS set.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";

const here = dirname(fileURLToPath(import.meta.url));
const schemasDir = process.env.PYCELL_SCHEMAS ?? join(here, "..", "..", "schemas");

const load = (path) => JSON.parse(readFileSync(path, "utf8"));
const jsonFiles = (dir) => readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

// One registry holding every top-level schema, as schemas/README.md tells clients to load them.
function registry() {
  const ajv = new Ajv2020({ strict: true });
  for (const file of jsonFiles(schemasDir)) ajv.addSchema(load(join(schemasDir, file)));
  return ajv;
}

test("schemas/ holds the schemas of every message the protocol names", () => {
  const files = new Set(jsonFiles(schemasDir));
  for (const name of [
    "jsonrpc.json", "initialize.params.json", "initialize.result.json", "initialized.params.json",
    "execute.params.json", "execute.result.json", "status.params.json", "status.result.json",
    "kill.params.json", "kill.result.json", "shutdown.params.json", "shutdown.result.json",
    "exit.notification.json", "analyze.params.json", "analyze.result.json",
    "session-create.params.json", "session-create.result.json", "session-close.params.json",
    "session-close.result.json", "execute-output.notification.json", "execute-usage.notification.json",
    "window-logMessage.notification.json", "cancelRequest.notification.json", "progress.notification.json",
    "config.schema.json",
  ]) {
    assert.ok(files.has(name), `schemas/${name} is missing`);
  }
});

for (const file of jsonFiles(schemasDir)) {
  test(`${file} compiles with Ajv2020 strict`, () => {
    const schema = load(join(schemasDir, file));
    assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
    assert.equal(schema.$id, `https://pycell.dev/schemas/${file}`);
    const ajv = registry();
    const validate = ajv.getSchema(schema.$id);  // compiles it and every schema it refers to
    assert.equal(typeof validate, "function");
  });
}

const toolsDir = join(schemasDir, "tools");
for (const file of jsonFiles(toolsDir)) {
  test(`tools/${file}: its input schema compiles with Ajv2020 strict`, () => {
    const tool = load(join(toolsDir, file));
    const inner = tool.input_schema ?? tool.function?.parameters ?? tool.inputSchema;
    assert.ok(inner && typeof inner === "object", `tools/${file} holds no input schema`);
    const validate = new Ajv2020({ strict: true }).compile(inner);
    assert.equal(typeof validate, "function");
  });
}
