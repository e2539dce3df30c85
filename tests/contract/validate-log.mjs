#!/usr/bin/env node
// Validates a contract log (WAPI_CONTRACT_LOG) against docs/openapi.json:
// one PASS/FAIL line per kind of mismatch, so `make test` counts them.
import { validateLog } from "./contract.mjs";

import fs from "node:fs";

const file = process.argv[2];
if (!file || !fs.existsSync(file)) {
  console.log(`FAIL: no contract log at ${file}: no suite recorded anything`);
  process.exit(1);
}
const { checked, problems } = validateLog(file);
console.log(`${checked} responses, SSE events and webhook bodies recorded in ${file}`);
console.log(checked > 0 ? `PASS: the suites' traffic was recorded (${checked} items)` : "FAIL: nothing was recorded");
for (const p of problems) console.log(`FAIL: ${p}`);
if (!problems.length) console.log(`PASS: every recorded response, SSE event and webhook body fits docs/openapi.json`);
process.exit(problems.length || !checked ? 1 : 0);
