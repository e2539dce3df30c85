#!/usr/bin/env node
// Lints a Dockerfile with dockerfile-utils (the parser and validator behind
// the Docker language server): syntax errors fail, warnings are shown.
// Also checks the one deployment fact an image must honour: its final stage
// does not run as root (the pod runs as uid 1001, runAsNonRoot).
// Usage: lint_dockerfile.mjs FILE — prints problems, exits 1 on any error.
import fs from 'node:fs';
import { validate } from 'dockerfile-utils';
import { DockerfileParser } from 'dockerfile-ast';

const file = process.argv[2];
if (!file) {
  console.error('usage: lint_dockerfile.mjs FILE');
  process.exit(2);
}
const text = fs.readFileSync(file, 'utf8');
let errors = 0;
for (const d of validate(text)) {
  const where = `${file}:${d.range.start.line + 1}`;
  if (d.severity === 1) {
    errors++;
    console.log(`error: ${where}: ${d.message}`);
  } else {
    console.log(`warning: ${where}: ${d.message}`);
  }
}
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();
let lastFrom = -1;
instructions.forEach((ins, i) => { if (ins.getKeyword() === 'FROM') lastFrom = i; });
if (lastFrom < 0) {
  errors++;
  console.log(`error: ${file}: no FROM instruction`);
} else {
  const users = instructions.slice(lastFrom).filter((ins) => ins.getKeyword() === 'USER');
  const user = users.length ? (users[users.length - 1].getArgumentsContent() || '').trim() : '';
  if (!user || /^(root|0)(:|$)/.test(user)) {
    errors++;
    console.log(`error: ${file}: the final stage must end with a non-root USER (the pod runs as 1001), got "${user || 'none'}"`);
  }
}
process.exit(errors ? 1 : 0);
