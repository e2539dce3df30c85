#!/usr/bin/env node
// Offline checks of the Kubernetes manifests in kubernetes/ (base, the dev and
// the staging overlays): schema validity, the Pod Security "restricted" profile, the facts
// of the deployment architecture, and that the environment names match the
// ones the server reads. Then proves the checks bite by breaking the
// manifests in memory, one way at a time, and expecting each to be rejected.
//
// Prints "PASS: name" / "FAIL: name detail"; exits non-zero on any FAIL.
// Environment: WAPI_BIN (default build/wapi) — the server binary asked for
// `--env-names`; KUBECTL (default kubectl).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { parser as promqlParser } from '@prometheus-io/lezer-promql';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const KDIR = path.join(ROOT, 'kubernetes');
const DEV = path.join(KDIR, 'overlays/dev');
const STAGING = path.join(KDIR, 'overlays/staging');
// What each rendering is checked as: its folder, its namespace, its public
// host (none: no Ingress). 'base' and 'staging' are production-like (prod:
// NODE_ENV=production, https, the Secret made by deploy.sh); 'dev' is not.
const TARGETS = {
  base: { dir: KDIR, namespace: 'wapi', host: 'your-domain.com', prod: true },
  dev: { dir: DEV, namespace: 'wapi', host: null, prod: false },
  staging: { dir: STAGING, namespace: 'wapi-staging', host: 'staging.your-domain.com', prod: true },
};
const KUBECTL = process.env.KUBECTL || 'kubectl';
const WAPI_BIN = process.env.WAPI_BIN || path.join(ROOT, 'build/wapi');

let failures = 0;
let passes = 0;
const pass = (name) => { passes++; console.log(`PASS: ${name}`); };
const fail = (name, detail) => {
  failures++;
  console.log(`FAIL: ${name} ${String(detail).replace(/\s*\n\s*/g, ' | ')}`);
};
const report = (name, errs) => (errs.length ? fail(name, errs.join('; ')) : pass(name));
const clone = (x) => structuredClone(x);
const idOf = (o) => `${o.kind}/${o?.metadata?.name}`;

// ---------------------------------------------------------------- rendering

function hasKubectl() {
  const r = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8', timeout: 20000 });
  return r.status === 0;
}

function parseDocs(text, where) {
  const out = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${where}: ${doc.errors[0].message}`);
    const o = doc.toJS();
    if (o !== null && o !== undefined) out.push(o);
  }
  return out;
}

function kubectlKustomize(dir) {
  const r = spawnSync(KUBECTL, ['kustomize', '--load-restrictor', 'LoadRestrictionsNone', dir],
    { encoding: 'utf8', timeout: 60000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${path.relative(ROOT, dir)}: ${r.stderr || r.error}`);
  return parseDocs(r.stdout, `kubectl kustomize ${dir}`);
}

// A small kustomize for when kubectl is absent: the subset these
// kustomizations use (resources, components, namespace, images, JSON 6902
// patches and "$patch: delete", labels without selectors, replacements,
// local-config objects left out). Anything else is refused rather than
// ignored; where kubectl is installed the two renderings must agree.
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume',
  'StorageClass', 'CustomResourceDefinition', 'IngressClass', 'PriorityClass']);
const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images', 'patches',
  'components', 'labels', 'replacements']);
const LOCAL_CONFIG = 'config.kubernetes.io/local-config';
// kustomize's template label field specs (labels: includeTemplates: true)
const TEMPLATE_LABELS = {
  Deployment: [['spec', 'template', 'metadata', 'labels']],
  ReplicaSet: [['spec', 'template', 'metadata', 'labels']],
  DaemonSet: [['spec', 'template', 'metadata', 'labels']],
  StatefulSet: [['spec', 'template', 'metadata', 'labels'], ['spec', 'volumeClaimTemplates', '[]', 'metadata', 'labels']],
  Job: [['spec', 'template', 'metadata', 'labels']],
  CronJob: [['spec', 'jobTemplate', 'metadata', 'labels'], ['spec', 'jobTemplate', 'spec', 'template', 'metadata', 'labels']],
};

function decodePointer(p) {
  return p.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}
function applyJson6902(obj, ops, where) {
  for (const op of ops) {
    const keys = decodePointer(op.path);
    const last = keys.pop();
    let parent = obj;
    for (const key of keys) {
      if (parent === null || typeof parent !== 'object' || !(key in parent)) {
        throw new Error(`${where}: path ${op.path} not found`);
      }
      parent = parent[key];
    }
    const isArr = Array.isArray(parent);
    switch (op.op) {
      case 'replace':
        if (!(last in parent)) throw new Error(`${where}: replace of missing ${op.path}`);
        parent[last] = clone(op.value);
        break;
      case 'add':
        if (isArr) {
          if (last === '-') parent.push(clone(op.value));
          else parent.splice(Number(last), 0, clone(op.value));
        } else parent[last] = clone(op.value);
        break;
      case 'remove':
        if (!(last in parent)) throw new Error(`${where}: remove of missing ${op.path}`);
        if (isArr) parent.splice(Number(last), 1); else delete parent[last];
        break;
      default:
        throw new Error(`${where}: unsupported patch op ${op.op}`);
    }
  }
}
function matchesTarget(o, t) {
  if (t.kind && o.kind !== t.kind) return false;
  if (t.name && o.metadata?.name !== t.name) return false;
  if (t.namespace && o.metadata?.namespace !== t.namespace) return false;
  return true;
}
// a kustomize field path ("spec.rules.0.host", "data.[a.b/c]") as keys
function fieldPathKeys(fp, where) {
  const keys = [];
  for (const m of String(fp).matchAll(/\[([^\]]*)\]|[^.[\]]+/g)) {
    if (m[1] !== undefined && m[1].includes('=')) throw new Error(`${where}: field path ${fp}: [key=value] not supported without kubectl`);
    keys.push(m[1] !== undefined ? m[1] : m[0]);
  }
  return keys;
}
// the objects (or values) at KEYS ('[]': every element of a list)
function walkPath(obj, keys, create, where, fp) {
  let nodes = [obj];
  for (const [i, key] of keys.entries()) {
    const next = [];
    for (const n of nodes) {
      if (key === '[]') { if (Array.isArray(n)) next.push(...n); continue; }
      if (i === keys.length - 1) { next.push({ parent: n, key }); continue; }
      let child = Array.isArray(n) ? n[Number(key)] : n[key];
      if (child === undefined || child === null) {
        if (!create) throw new Error(`${where}: ${fp} not found in ${idOf(obj)}`);
        child = n[key] = {};
      }
      next.push(child);
    }
    nodes = next;
  }
  return nodes;
}
function applyLabels(objs, entry, where) {
  for (const key of Object.keys(entry)) {
    if (!['pairs', 'includeSelectors', 'includeTemplates'].includes(key)) throw new Error(`${where}: labels.${key} not supported without kubectl`);
  }
  if (entry.includeSelectors) throw new Error(`${where}: labels with includeSelectors not supported without kubectl`);
  for (const o of objs) {
    const paths = [['metadata', 'labels'], ...(entry.includeTemplates ? TEMPLATE_LABELS[o.kind] || [] : [])];
    for (const p of paths) {
      for (const { parent, key } of walkPath(o, p, true, where, p.join('.'))) {
        parent[key] = { ...(parent[key] || {}), ...Object.fromEntries(Object.entries(entry.pairs || {}).map(([k, v]) => [k, String(v)])) };
      }
    }
  }
}
function applyReplacement(objs, r, where) {
  const src = r.source || {};
  const sources = objs.filter((o) => matchesTarget(o, src));
  if (sources.length !== 1) throw new Error(`${where}: ${sources.length} objects match the source`);
  const [{ parent, key }] = walkPath(sources[0], fieldPathKeys(src.fieldPath || 'metadata.name', where), false, where, src.fieldPath);
  const value = parent[key];
  if (value === undefined) throw new Error(`${where}: source ${src.fieldPath} not found`);
  for (const t of r.targets || []) {
    const opts = t.options || {};
    if (opts.delimiter !== undefined || opts.index !== undefined) throw new Error(`${where}: delimiter/index not supported without kubectl`);
    if (t.reject) throw new Error(`${where}: reject not supported without kubectl`);
    const targets = objs.filter((o) => matchesTarget(o, t.select || {}));
    for (const o of targets) {
      for (const fp of t.fieldPaths || []) {
        for (const n of walkPath(o, fieldPathKeys(fp, where), !!opts.create, where, fp)) {
          if (!opts.create && n.parent[n.key] === undefined) throw new Error(`${where}: ${fp} not found in ${idOf(o)}`);
          n.parent[n.key] = clone(value);
        }
      }
    }
  }
}
function fallbackKustomize(dir) {
  const objs = [];
  kustomizeInto(dir, objs, null); // a Component may be built on its own too
  return objs.filter((o) => o.metadata?.annotations?.[LOCAL_CONFIG] !== 'true');
}
// Adds DIR's resources to OBJS, then applies its components and its own
// transformations to all of OBJS (a component acts on what includes it).
function kustomizeInto(dir, objs, kind) {
  const kfile = path.join(dir, 'kustomization.yaml');
  const kz = YAML.parse(fs.readFileSync(kfile, 'utf8'));
  for (const key of Object.keys(kz)) {
    if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${kfile}: field ${key} not supported without kubectl`);
  }
  if (kind && (kz.kind || 'Kustomization') !== kind) throw new Error(`${kfile}: kind ${kz.kind}, expected ${kind}`);
  for (const res of kz.resources || []) {
    const p = path.resolve(dir, res);
    if (fs.statSync(p).isDirectory()) objs.push(...fallbackKustomize(p));
    else objs.push(...parseDocs(fs.readFileSync(p, 'utf8'), p));
  }
  for (const c of kz.components || []) kustomizeInto(path.resolve(dir, c), objs, 'Component');
  for (const [i, pt] of (kz.patches || []).entries()) {
    const where = `${kfile} patches[${i}]`;
    const body = YAML.parse(pt.path ? fs.readFileSync(path.resolve(dir, pt.path), 'utf8') : pt.patch);
    if (Array.isArray(body)) {
      const targets = objs.filter((o) => matchesTarget(o, pt.target || {}));
      if (!targets.length) throw new Error(`${where}: no object matches the target`);
      for (const o of targets) applyJson6902(o, body, where);
    } else if (body && body.$patch === 'delete') {
      const before = objs.length;
      const kept = objs.filter((o) => !(o.kind === body.kind && o.metadata?.name === body.metadata?.name));
      if (kept.length === before) throw new Error(`${where}: nothing to delete`);
      objs.splice(0, objs.length, ...kept);
    } else {
      throw new Error(`${where}: strategic merge patches are not supported without kubectl`);
    }
  }
  for (const img of kz.images || []) {
    for (const spec of objs.map(podSpecOf).filter(Boolean)) {
      for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
        const m = /^(.*?)(?::([^:/@]+))?(@.+)?$/.exec(c.image);
        if (m[1] !== img.name) continue;
        c.image = `${img.newName || m[1]}${img.digest ? '@' + img.digest : `:${img.newTag || m[2] || 'latest'}`}`;
      }
    }
  }
  if (kz.namespace) {
    for (const o of objs) {
      if (o.kind === 'Namespace') o.metadata.name = kz.namespace;
      else if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = kz.namespace;
      if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
        for (const s of o.subjects || []) {
          if (s.kind === 'ServiceAccount' && !s.namespace) s.namespace = kz.namespace;
        }
      }
    }
  }
  for (const [i, l] of (kz.labels || []).entries()) applyLabels(objs, l, `${kfile} labels[${i}]`);
  for (const [i, r] of (kz.replacements || []).entries()) applyReplacement(objs, r, `${kfile} replacements[${i}]`);
}

const sortKey = (o) => `${o.kind}/${o.metadata?.namespace || ''}/${o.metadata?.name}`;
function canonical(objs) {
  const sortDeep = (x) => {
    if (Array.isArray(x)) return x.map(sortDeep);
    if (x && typeof x === 'object') {
      return Object.fromEntries(Object.keys(x).sort().map((k) => [k, sortDeep(x[k])]));
    }
    return x;
  };
  return JSON.stringify([...objs].sort((a, b) => sortKey(a).localeCompare(sortKey(b))).map(sortDeep));
}

// ------------------------------------------------------------------ helpers

function podSpecOf(o) {
  switch (o.kind) {
    case 'Pod': return o.spec;
    case 'Deployment': case 'StatefulSet': case 'DaemonSet': case 'ReplicaSet': case 'Job':
      return o.spec?.template?.spec;
    case 'CronJob': return o.spec?.jobTemplate?.spec?.template?.spec;
    default: return undefined;
  }
}
function podMetaOf(o) {
  if (o.kind === 'Pod') return o.metadata;
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template?.metadata;
  return o.spec?.template?.metadata;
}
const find = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata?.name === name);

function parseQuantity(q) {
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(q));
  if (!m) return NaN;
  const mult = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }[m[2]];
  return mult === undefined ? NaN : Number(m[1]) * mult;
}
const sameQuantity = (a, b) => Math.abs(parseQuantity(a) - parseQuantity(b)) < 1e-9 * Math.max(1, parseQuantity(b));

// port of a container named or numbered by a probe / Service
function resolvePort(container, port) {
  if (typeof port === 'number') return port;
  return (container.ports || []).find((p) => p.name === port)?.containerPort;
}

// ------------------------------------------------------ schema validation

async function modelClass(o) {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : [null, o.apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}/${o.kind}` : `kubernetes-models/${version}/${o.kind}`;
  try {
    return (await import(mod))[o.kind];
  } catch {
    return undefined;
  }
}

// kubernetes-models: JSON schema of the Kubernetes OpenAPI (types, enums,
// required fields).
async function schemaErrors(o) {
  if (!o || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') return ['missing apiVersion/kind'];
  const Cls = await modelClass(o);
  if (!Cls) return [`no schema for ${o.apiVersion} ${o.kind}`];
  try {
    new Cls(o).validate();
    return [];
  } catch (e) {
    const errs = e.errors || [{ instancePath: '', message: e.message }];
    return errs.slice(0, 5).map((x) => `${x.instancePath || '/'} ${x.message}`);
  }
}

// @kubernetes/client-node: attribute type maps, walked recursively, so that a
// field the API does not know (a typo) is an error instead of being dropped.
function rootTypeName(o) {
  const version = o.apiVersion.split('/').pop();
  return `${version[0].toUpperCase()}${version.slice(1)}${o.kind}`;
}
function unknownFieldErrors(o) {
  const errs = [];
  const typeName = rootTypeName(o);
  if (!k8s[typeName]?.getAttributeTypeMap) return [`no client-node model ${typeName}`];
  const walk = (v, type, p) => {
    if (v === null || v === undefined) return;
    let m;
    if ((m = /^Array<(.+)>$/.exec(type))) {
      if (!Array.isArray(v)) errs.push(`${p}: expected a list`);
      else v.forEach((x, i) => walk(x, m[1], `${p}[${i}]`));
      return;
    }
    if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
      if (typeof v !== 'object' || Array.isArray(v)) errs.push(`${p}: expected a map`);
      else for (const [key, x] of Object.entries(v)) walk(x, m[1], `${p}.${key}`);
      return;
    }
    switch (type) {
      case 'any': case 'object': return;
      case 'string': case 'Date':
        if (typeof v !== 'string') errs.push(`${p}: expected a string, got ${JSON.stringify(v)}`);
        return;
      case 'number':
        if (typeof v !== 'number') errs.push(`${p}: expected a number, got ${JSON.stringify(v)}`);
        return;
      case 'boolean':
        if (typeof v !== 'boolean') errs.push(`${p}: expected a boolean, got ${JSON.stringify(v)}`);
        return;
      case 'IntOrString':
        if (typeof v !== 'string' && !Number.isInteger(v)) errs.push(`${p}: expected an int or string`);
        return;
      default: {
        const Cls = k8s[type];
        if (!Cls?.getAttributeTypeMap) { errs.push(`${p}: unknown model type ${type}`); return; }
        if (typeof v !== 'object' || Array.isArray(v)) { errs.push(`${p}: expected an object`); return; }
        const attrs = new Map(Cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
        for (const [key, x] of Object.entries(v)) {
          if (!attrs.has(key)) errs.push(`${p}.${key}: unknown field`);
          else walk(x, attrs.get(key), `${p}.${key}`);
        }
      }
    }
  };
  walk(o, typeName, idOf(o));
  return errs;
}

// ------------------------------------------- Pod Security Standards: restricted

const BASELINE_CAPS = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD',
  'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);
const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral',
  'persistentVolumeClaim', 'projected', 'secret', 'image']);
const SAFE_SYSCTLS = new Set(['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes']);
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

function restrictedViolations(spec, meta = {}) {
  const v = [];
  const psc = spec.securityContext || {};
  const all = [...(spec.initContainers || []), ...(spec.containers || []), ...(spec.ephemeralContainers || [])];
  // baseline
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[f]) v.push(`${f}: true`);
  if (psc.windowsOptions?.hostProcess) v.push('pod hostProcess');
  for (const vol of spec.volumes || []) {
    const type = Object.keys(vol).find((key) => key !== 'name');
    if (type === 'hostPath') v.push(`volume ${vol.name}: hostPath`);
    else if (!RESTRICTED_VOLUMES.has(type)) v.push(`volume ${vol.name}: type ${type} not allowed`);
  }
  for (const s of psc.sysctls || []) if (!SAFE_SYSCTLS.has(s.name)) v.push(`sysctl ${s.name} not allowed`);
  const checkSeLinux = (se, who) => {
    if (!se) return;
    if (se.type !== undefined && !SELINUX_TYPES.has(se.type)) v.push(`${who} seLinuxOptions.type ${se.type}`);
    if (se.user !== undefined || se.role !== undefined) v.push(`${who} seLinuxOptions user/role set`);
  };
  checkSeLinux(psc.seLinuxOptions, 'pod');
  const okAppArmor = (t) => t === undefined || t === 'RuntimeDefault' || t === 'Localhost';
  if (!okAppArmor(psc.appArmorProfile?.type)) v.push(`pod appArmorProfile ${psc.appArmorProfile.type}`);
  for (const [key, val] of Object.entries(meta.annotations || {})) {
    if (key.startsWith('container.apparmor.security.beta.kubernetes.io/') &&
        val !== 'runtime/default' && !String(val).startsWith('localhost/')) v.push(`AppArmor annotation ${val}`);
  }
  // restricted, pod level
  if (psc.runAsUser === 0) v.push('pod runAsUser 0');
  const okSeccomp = (t) => t === 'RuntimeDefault' || t === 'Localhost';
  const podSeccomp = psc.seccompProfile?.type;
  if (podSeccomp !== undefined && !okSeccomp(podSeccomp)) v.push(`pod seccompProfile ${podSeccomp}`);
  for (const c of all) {
    const sc = c.securityContext || {};
    const who = `container ${c.name}`;
    if (sc.privileged) v.push(`${who}: privileged`);
    if (sc.windowsOptions?.hostProcess) v.push(`${who}: hostProcess`);
    for (const p of c.ports || []) if (p.hostPort) v.push(`${who}: hostPort ${p.hostPort}`);
    checkSeLinux(sc.seLinuxOptions, who);
    if (!okAppArmor(sc.appArmorProfile?.type)) v.push(`${who}: appArmorProfile ${sc.appArmorProfile.type}`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') v.push(`${who}: procMount ${sc.procMount}`);
    for (const cap of sc.capabilities?.add || []) {
      if (!BASELINE_CAPS.has(cap)) v.push(`${who}: adds capability ${cap}`);
      else if (cap !== 'NET_BIND_SERVICE') v.push(`${who}: adds capability ${cap} (restricted allows only NET_BIND_SERVICE)`);
    }
    if (sc.allowPrivilegeEscalation !== false) v.push(`${who}: allowPrivilegeEscalation must be false`);
    if (sc.runAsNonRoot === false) v.push(`${who}: runAsNonRoot false`);
    if (sc.runAsNonRoot !== true && psc.runAsNonRoot !== true) v.push(`${who}: runAsNonRoot not set`);
    if (sc.runAsUser === 0) v.push(`${who}: runAsUser 0`);
    const t = sc.seccompProfile?.type;
    if (t !== undefined && !okSeccomp(t)) v.push(`${who}: seccompProfile ${t}`);
    if (t === undefined && !okSeccomp(podSeccomp)) v.push(`${who}: no seccompProfile (pod or container)`);
    if (!(sc.capabilities?.drop || []).includes('ALL')) v.push(`${who}: must drop ALL capabilities`);
  }
  return v;
}

// ----------------------------------------------------- server's env names

const SECRET_NAMES = ['DATABASE_URL', 'DATABASE_AUTH_TOKEN', 'BETTER_AUTH_SECRET'];
// The metrics listener (WAPI_METRICS_LISTEN): Prometheus only, never the Ingress.
const METRICS_PORT = 9464;
const normEnv = (n) => n.replace(/_FILE$/, '');

function serverEnvNames() {
  if (!fs.existsSync(WAPI_BIN)) {
    return { error: `${WAPI_BIN.startsWith(ROOT + '/') ? path.relative(ROOT, WAPI_BIN) : WAPI_BIN} does not exist: build the server first (make), ` +
      'the env check needs `wapi --env-names`' };
  }
  const r = spawnSync(WAPI_BIN, ['--env-names'], { encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) {
    return { error: `\`${WAPI_BIN} --env-names\` failed (${r.error?.code || `exit ${r.status}`}): ${(r.stderr || '').slice(0, 200)}` };
  }
  const lines = r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  const bad = lines.filter((s) => !/^[A-Z][A-Z0-9_]*$/.test(s));
  if (!lines.length || bad.length) {
    return { error: `\`${WAPI_BIN} --env-names\` should print one name per line, got ${JSON.stringify(r.stdout.slice(0, 200))}` };
  }
  return { names: new Set(lines.map(normEnv)) };
}

// The names the wapi container is given: ConfigMap and Secret keys through
// envFrom (the Secret of the base is secret.example.yaml, not applied by
// kustomize) and explicit env entries.
function providedEnv(ctx) {
  const dep = find(ctx.objs, 'Deployment', 'wapi');
  const c = dep?.spec?.template?.spec?.containers?.find((x) => x.name === 'wapi');
  const out = { config: new Map(), secret: new Map(), env: [] };
  if (!c) return out;
  for (const ref of c.envFrom || []) {
    const prefix = ref.prefix || '';
    if (ref.configMapRef) {
      const cm = find(ctx.objs, 'ConfigMap', ref.configMapRef.name);
      for (const key of Object.keys(cm?.data || {})) out.config.set(normEnv(prefix + key), cm.metadata.name);
    }
    if (ref.secretRef) {
      const s = find(ctx.objs, 'Secret', ref.secretRef.name) ||
        (ctx.secretExample?.metadata?.name === ref.secretRef.name ? ctx.secretExample : undefined);
      for (const key of Object.keys({ ...(s?.data || {}), ...(s?.stringData || {}) })) {
        out.secret.set(normEnv(prefix + key), s.metadata.name);
      }
    }
  }
  for (const e of c.env || []) out.env.push(normEnv(e.name));
  return out;
}

// ------------------------------------------------------------------ checks
// Each check takes a context {label, objs, secretExample, overlayKustomization,
// baseKustomization, serverNames} and returns a list of problems.

function deploymentChecks(ctx) {
  const e = [];
  const d = find(ctx.objs, 'Deployment', 'wapi');
  if (!d) return ['no Deployment wapi'];
  const spec = d.spec || {};
  const pod = spec.template?.spec || {};
  const c = (pod.containers || []).find((x) => x.name === 'wapi');
  if (spec.replicas !== 1) e.push(`replicas is ${spec.replicas}, must be 1`);
  if (spec.strategy?.type !== 'Recreate') e.push(`strategy is ${spec.strategy?.type}, must be Recreate`);
  if (d.metadata?.labels?.app !== 'wapi') e.push('Deployment lacks label app=wapi');
  if (spec.template?.metadata?.labels?.app !== 'wapi') e.push('pod template lacks label app=wapi');
  if (spec.selector?.matchLabels?.app !== 'wapi') e.push('selector is not app=wapi');
  if (!(pod.terminationGracePeriodSeconds > 25)) e.push(`terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed the 25 s drain`);
  const cm = find(ctx.objs, 'ConfigMap', 'wapi-config');
  const drain = Number(cm?.data?.WAPI_SHUTDOWN_TIMEOUT ?? 25);
  if (!(pod.terminationGracePeriodSeconds > drain)) e.push(`terminationGracePeriodSeconds must exceed WAPI_SHUTDOWN_TIMEOUT (${drain})`);
  if (pod.enableServiceLinks !== false) e.push('enableServiceLinks must be false (Service env vars would land in WAPI_*)');
  const psc = pod.securityContext || {};
  for (const f of ['runAsUser', 'runAsGroup', 'fsGroup']) if (psc[f] !== 1001) e.push(`pod ${f} is ${psc[f]}, must be 1001`);
  if (psc.runAsNonRoot !== true) e.push('pod runAsNonRoot must be true');
  if (psc.seccompProfile?.type !== 'RuntimeDefault') e.push('pod seccompProfile must be RuntimeDefault');
  if (!c) return [...e, 'no container wapi'];
  if (ctx.label === 'base' && c.image !== 'your-registry/wapi:latest') e.push(`image ${c.image}, expected your-registry/wapi:latest`);
  if (!(c.ports || []).some((p) => p.containerPort === 3000)) e.push('no containerPort 3000');
  // /metrics: its own container port, named for the Service; the annotations point there.
  if (resolvePort(c, 'metrics') !== METRICS_PORT) e.push(`no containerPort ${METRICS_PORT} named metrics`);
  if (resolvePort(c, 'http') !== 3000) e.push('the containerPort named http must be 3000');
  const ann = spec.template?.metadata?.annotations || {};
  if (ann['prometheus.io/port'] !== String(METRICS_PORT)) {
    e.push(`pod annotation prometheus.io/port ${ann['prometheus.io/port']}, must be "${METRICS_PORT}" (the metrics port)`);
  }
  if (ann['prometheus.io/path'] !== '/metrics') e.push('pod annotation prometheus.io/path must be /metrics');
  const sc = c.securityContext || {};
  if (sc.readOnlyRootFilesystem !== true) e.push('readOnlyRootFilesystem must be true');
  if (sc.allowPrivilegeEscalation !== false) e.push('allowPrivilegeEscalation must be false');
  if (sc.runAsNonRoot !== true) e.push('container runAsNonRoot must be true');
  for (const f of ['runAsUser', 'runAsGroup']) if (sc[f] !== undefined && sc[f] !== 1001) e.push(`container ${f} ${sc[f]}, must be 1001`);
  if (sc.privileged) e.push('container must not be privileged');
  if (!(sc.capabilities?.drop || []).includes('ALL')) e.push('capabilities must drop ALL');
  if (sc.seccompProfile?.type !== 'RuntimeDefault') e.push('container seccompProfile must be RuntimeDefault');
  const req = c.resources?.requests || {};
  const lim = c.resources?.limits || {};
  if (!sameQuantity(req.cpu, '250m')) e.push(`requests.cpu ${req.cpu}, expected 250m`);
  if (!sameQuantity(req.memory, '512Mi')) e.push(`requests.memory ${req.memory}, expected 512Mi`);
  if (!sameQuantity(lim.cpu, '1000m')) e.push(`limits.cpu ${lim.cpu}, expected 1000m`);
  if (!sameQuantity(lim.memory, '2Gi')) e.push(`limits.memory ${lim.memory}, expected 2Gi`);
  const refs = c.envFrom || [];
  if (!refs.some((r) => r.configMapRef?.name === 'wapi-config')) e.push('envFrom lacks ConfigMap wapi-config');
  if (!refs.some((r) => r.secretRef?.name === 'wapi-secrets')) e.push('envFrom lacks Secret wapi-secrets');
  // probes
  const probe = (name, want) => {
    const p = c[name];
    if (!p?.httpGet) { e.push(`${name} must be an HTTP GET`); return; }
    if (want && p.httpGet.path !== want) e.push(`${name} path ${p.httpGet.path}, expected ${want}`);
    if (resolvePort(c, p.httpGet.port) !== 3000) e.push(`${name} port must be 3000`);
  };
  probe('livenessProbe', '/healthz');
  probe('readinessProbe', '/readyz');
  probe('startupProbe', null);
  // volumes
  const vols = new Map((pod.volumes || []).map((v) => [v.name, v]));
  const mountAt = (mp) => (c.volumeMounts || []).find((m) => m.mountPath === mp);
  const wantPvc = (mp, claim) => {
    const m = mountAt(mp);
    if (!m) { e.push(`nothing mounted at ${mp}`); return; }
    if (m.readOnly) e.push(`${mp} must be writable`);
    const v = vols.get(m.name);
    if (v?.persistentVolumeClaim?.claimName !== claim) e.push(`${mp} must be the PVC ${claim}`);
  };
  wantPvc('/app/whatsapp_sessions', 'whatsapp-sessions');
  wantPvc('/app/public/media', 'media');
  const tmp = mountAt('/tmp');
  if (!tmp || !vols.get(tmp.name)?.emptyDir) e.push('/tmp must be an emptyDir');
  return e;
}

function configChecks(ctx) {
  const e = [];
  const cm = find(ctx.objs, 'ConfigMap', 'wapi-config');
  if (!cm) return ['no ConfigMap wapi-config'];
  const data = cm.data || {};
  for (const [key, val] of Object.entries(data)) if (typeof val !== 'string') e.push(`${key} is not a string`);
  for (const s of SECRET_NAMES) if (s in data || `${s}_FILE` in data) e.push(`${s} is a secret and must not be in the ConfigMap`);
  const t = TARGETS[ctx.label];
  if (t.prod) {
    if (data.NODE_ENV !== 'production') e.push(`NODE_ENV ${data.NODE_ENV}, must be production`);
    if (!/^https:\/\//.test(data.BETTER_AUTH_URL || '')) e.push('BETTER_AUTH_URL must be an https:// URL');
    // Cookies and CSRF checks follow BETTER_AUTH_URL: it must be the host
    // the Ingress publishes, and the dashboard's origin must be trusted.
    const url = t.url || `https://${t.host}`;
    if (data.BETTER_AUTH_URL !== url) e.push(`BETTER_AUTH_URL ${data.BETTER_AUTH_URL}, must be ${url} (the Ingress host${t.url ? ' and path' : ''})`);
    if (!String(data.WAPI_AUTH_TRUSTED_ORIGINS || '').split(',').map((x) => x.trim()).includes(`https://${t.host}`)) {
      e.push(`WAPI_AUTH_TRUSTED_ORIGINS must include https://${t.host}`);
    }
  } else if (!data.BETTER_AUTH_URL) e.push('BETTER_AUTH_URL missing');
  const dep = find(ctx.objs, 'Deployment', 'wapi');
  const c = dep?.spec?.template?.spec?.containers?.find((x) => x.name === 'wapi');
  const mounts = new Set((c?.volumeMounts || []).map((m) => m.mountPath));
  if (data.WAPI_PATHS_SESSIONS !== '/app/whatsapp_sessions' || !mounts.has(data.WAPI_PATHS_SESSIONS)) {
    e.push(`WAPI_PATHS_SESSIONS ${data.WAPI_PATHS_SESSIONS} must be the mounted /app/whatsapp_sessions`);
  }
  if (data.WAPI_PATHS_MEDIA !== '/app/public/media' || !mounts.has(data.WAPI_PATHS_MEDIA)) {
    e.push(`WAPI_PATHS_MEDIA ${data.WAPI_PATHS_MEDIA} must be the mounted /app/public/media`);
  }
  if (!String(data.WAPI_PATHS_RUN || '').startsWith('/tmp/')) e.push('WAPI_PATHS_RUN must be under /tmp (the writable emptyDir)');
  if (data.PORT !== '3000') e.push(`PORT ${data.PORT}, must be 3000`);
  if (data.WAPI_LISTEN !== undefined && !/:3000$/.test(data.WAPI_LISTEN)) e.push(`WAPI_LISTEN ${data.WAPI_LISTEN} must listen on 3000`);
  // Without it /metrics is served on 3000, which the Ingress publishes.
  if (!/^(0\.0\.0\.0|\[::\])$/.test(String(data.WAPI_METRICS_LISTEN || '').replace(/:\d+$/, '')) ||
      !String(data.WAPI_METRICS_LISTEN).endsWith(`:${METRICS_PORT}`)) {
    e.push(`WAPI_METRICS_LISTEN ${JSON.stringify(data.WAPI_METRICS_LISTEN)} must be "0.0.0.0:${METRICS_PORT}" (reachable in the pod, off the Ingress)`);
  }
  if (data.WAPI_SHUTDOWN_TIMEOUT !== undefined && !(Number(data.WAPI_SHUTDOWN_TIMEOUT) > 0)) e.push('WAPI_SHUTDOWN_TIMEOUT must be a number of seconds');
  return e;
}

function secretChecks(ctx) {
  const e = [];
  // Production-like targets carry no Secret (deploy.sh secret makes it): the
  // example stands for it. The dev overlay ships its own.
  const prod = TARGETS[ctx.label].prod;
  if (prod && find(ctx.objs, 'Secret', 'wapi-secrets')) return ['a production-like rendering must not carry wapi-secrets'];
  const s = prod ? ctx.secretExample : find(ctx.objs, 'Secret', 'wapi-secrets');
  if (!s) return ['no Secret wapi-secrets'];
  if (s.metadata?.name !== 'wapi-secrets') e.push(`Secret named ${s.metadata?.name}`);
  const keys = Object.keys({ ...(s.data || {}), ...(s.stringData || {}) });
  for (const k of SECRET_NAMES) if (!keys.includes(k)) e.push(`lacks ${k}`);
  for (const k of keys) if (!SECRET_NAMES.includes(normEnv(k))) e.push(`${k} is not a secret setting; put it in the ConfigMap`);
  const vals = Object.values(s.stringData || {});
  if (prod) {
    if (s.data) e.push('the example must use stringData placeholders, not data');
    if (!/REPLACE/.test(s.stringData?.BETTER_AUTH_SECRET || '')) e.push('BETTER_AUTH_SECRET must be a REPLACE… placeholder');
    if (!/REPLACE/.test(s.stringData?.DATABASE_AUTH_TOKEN || '')) e.push('DATABASE_AUTH_TOKEN must be a REPLACE… placeholder');
    if (!/example/.test(s.stringData?.DATABASE_URL || '')) e.push('DATABASE_URL must be an example.* placeholder');
    if (ctx.baseKustomization.resources.some((r) => /secret/i.test(r))) e.push('the example Secret must not be in kustomization resources');
  } else {
    if (!vals.every((v) => /dev/.test(v)) && !/dev-only|DEV ONLY/.test(JSON.stringify(s.metadata))) e.push('dev credentials must be marked dev-only');
    if ((s.stringData?.BETTER_AUTH_SECRET || '').length < 32) e.push('BETTER_AUTH_SECRET shorter than 32');
  }
  return e;
}

function envChecks(ctx) {
  if (ctx.serverNames.error) return [ctx.serverNames.error];
  const server = ctx.serverNames.names;
  const p = providedEnv(ctx);
  const e = [];
  const given = new Set([...p.config.keys(), ...p.secret.keys(), ...p.env]);
  for (const n of given) if (!server.has(n)) e.push(`${n} is not a name the server reads`);
  for (const n of server) if (!given.has(n)) e.push(`${n} (read by the server) is in neither wapi-config nor wapi-secrets`);
  return e;
}

// The values, not only the names: the server's own configuration check
// (`wapi -t`) over exactly the environment the pod gets, run in an empty
// folder so that no conf/wapi.conf of the work tree takes part.
function configValueChecks(ctx) {
  if (ctx.serverNames.error) return [ctx.serverNames.error];
  const dep = find(ctx.objs, 'Deployment', 'wapi');
  const c = dep?.spec?.template?.spec?.containers?.find((x) => x.name === 'wapi');
  const env = { PATH: process.env.PATH || '/usr/bin:/bin' };
  for (const ref of c?.envFrom || []) {
    const prefix = ref.prefix || '';
    if (ref.configMapRef) {
      for (const [key, v] of Object.entries(find(ctx.objs, 'ConfigMap', ref.configMapRef.name)?.data || {})) env[prefix + key] = v;
    }
    if (ref.secretRef) {
      const s = find(ctx.objs, 'Secret', ref.secretRef.name) ||
        (ctx.secretExample?.metadata?.name === ref.secretRef.name ? ctx.secretExample : undefined);
      for (const [key, v] of Object.entries(s?.data || {})) env[prefix + key] = Buffer.from(v, 'base64').toString();
      for (const [key, v] of Object.entries(s?.stringData || {})) env[prefix + key] = v;
    }
  }
  for (const e of c?.env || []) if (e.value !== undefined) env[e.name] = e.value;
  const r = spawnSync(WAPI_BIN, ['-t'], { cwd: ctx.emptyDir, env, encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) {
    const msg = `${r.stderr || ''}${r.stdout || ''}`.trim().split('\n').pop();
    let why = msg;
    try { why = JSON.parse(msg).error || msg; } catch { /* plain text */ }
    return [`\`wapi -t\` rejects the pod's environment (${r.error?.code || `exit ${r.status}`}): ${why}`];
  }
  return [];
}

function storageChecks(ctx) {
  const e = [];
  const want = ctx.label === 'base' ? { 'whatsapp-sessions': '5Gi', media: '20Gi' } : { 'whatsapp-sessions': null, media: null };
  for (const [name, size] of Object.entries(want)) {
    const p = find(ctx.objs, 'PersistentVolumeClaim', name);
    if (!p) { e.push(`no PVC ${name}`); continue; }
    const modes = p.spec?.accessModes || [];
    if (modes.length !== 1 || modes[0] !== 'ReadWriteOnce') e.push(`${name} accessModes ${modes}, must be ReadWriteOnce`);
    if (size && !sameQuantity(p.spec?.resources?.requests?.storage, size)) e.push(`${name} size ${p.spec?.resources?.requests?.storage}, must be ${size}`);
  }
  return e;
}

function serviceChecks(ctx) {
  const e = [];
  const s = find(ctx.objs, 'Service', 'wapi');
  if (!s) return ['no Service wapi'];
  if ((s.spec?.type || 'ClusterIP') !== 'ClusterIP') e.push(`type ${s.spec.type}, must be ClusterIP`);
  const ports = s.spec?.ports || [];
  const dep = find(ctx.objs, 'Deployment', 'wapi');
  const c = dep?.spec?.template?.spec?.containers?.find((x) => x.name === 'wapi') || {};
  const http = ports.find((p) => p.name === 'http');
  const metrics = ports.find((p) => p.name === 'metrics');
  if (!http || http.port !== 80 || resolvePort(c, http.targetPort) !== 3000) {
    e.push(`port http must be 80 -> 3000, got ${JSON.stringify(http)}`);
  }
  if (!metrics || metrics.port !== METRICS_PORT || resolvePort(c, metrics.targetPort) !== METRICS_PORT) {
    e.push(`port metrics must be ${METRICS_PORT} -> ${METRICS_PORT} (/metrics for Prometheus), got ${JSON.stringify(metrics)}`);
  }
  if (ports.length !== 2) e.push(`ports must be http and metrics only, got ${JSON.stringify(ports)}`);
  const labels = dep?.spec?.template?.metadata?.labels || {};
  const sel = s.spec?.selector || {};
  if (!Object.keys(sel).length || !Object.entries(sel).every(([key, v]) => labels[key] === v)) e.push('selector does not select the wapi pod');
  return e;
}

function ingressChecks(ctx) {
  const ing = find(ctx.objs, 'Ingress', 'wapi');
  const host = TARGETS[ctx.label].host;
  if (!host) return ing ? [`the ${ctx.label} overlay should have no Ingress`] : [];
  if (!ing) return ['no Ingress wapi'];
  const e = [];
  const a = ing.metadata?.annotations || {};
  if (ing.spec?.ingressClassName !== 'nginx') e.push('ingressClassName must be nginx');
  if (!a['cert-manager.io/cluster-issuer']) e.push('no cert-manager.io/cluster-issuer annotation');
  if (a['nginx.ingress.kubernetes.io/proxy-buffering'] !== 'off') e.push('proxy-buffering must be off (SSE)');
  for (const t of ['proxy-read-timeout', 'proxy-send-timeout']) {
    if (!(Number(a[`nginx.ingress.kubernetes.io/${t}`]) >= 600)) e.push(`${t} must be long (>= 600 s) for SSE`);
  }
  const rule = (ing.spec?.rules || [])[0];
  if (rule?.host !== host) e.push(`host ${rule?.host}, expected ${host}`);
  if (!(ing.spec?.tls || []).some((t) => (t.hosts || []).includes(rule?.host) && t.secretName)) e.push('no TLS for the host');
  const be = rule?.http?.paths?.[0]?.backend?.service;
  const svc = find(ctx.objs, 'Service', 'wapi');
  const svcPort = (svc?.spec?.ports || []).find((p) => p.port === be?.port?.number || p.name === be?.port?.name);
  if (be?.name !== 'wapi' || svcPort?.port !== 80) e.push('backend must be Service wapi port 80');
  // Every backend, of every rule and the default one, is the port "http":
  // the metrics port never reaches the internet.
  const backends = [ing.spec?.defaultBackend, ...(ing.spec?.rules || []).flatMap((r) => (r.http?.paths || []).map((x) => x.backend))];
  for (const b of backends.filter(Boolean)) {
    const port = (svc?.spec?.ports || []).find((p) => p.port === b.service?.port?.number || p.name === b.service?.port?.name);
    if (b.resource || b.service?.name !== 'wapi' || port?.name !== 'http') {
      e.push(`backend ${JSON.stringify(b)} is not the Service wapi port http`);
    }
  }
  return e;
}

function hpaChecks(ctx) {
  const h = find(ctx.objs, 'HorizontalPodAutoscaler', 'wapi');
  if (!h) return ['no HorizontalPodAutoscaler wapi'];
  const e = [];
  if (h.apiVersion !== 'autoscaling/v2') e.push(`apiVersion ${h.apiVersion}, must be autoscaling/v2`);
  if (h.spec?.minReplicas !== 1 || h.spec?.maxReplicas !== 1) e.push(`min/max ${h.spec?.minReplicas}/${h.spec?.maxReplicas}, must be 1/1`);
  const t = h.spec?.scaleTargetRef || {};
  if (t.kind !== 'Deployment' || t.name !== 'wapi') e.push('must target Deployment wapi');
  return e;
}

const PRIVATE_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];
function networkPolicyChecks(ctx) {
  const np = ctx.objs.find((o) => o.kind === 'NetworkPolicy' && o.spec?.podSelector?.matchLabels?.app === 'wapi');
  if (!np) return ['no NetworkPolicy selecting app=wapi'];
  const e = [];
  const types = np.spec.policyTypes || [];
  if (!types.includes('Ingress') || !types.includes('Egress')) e.push('policyTypes must be Ingress and Egress');
  // ingress: ingress-nginx on TCP 3000 only; one other, named namespace
  // (Prometheus's) on TCP 9464 only. 9464 is never admitted from ingress-nginx.
  const nsOf = (f) => (f.ipBlock || f.podSelector || Object.keys(f.namespaceSelector || {}).some((k) => k !== 'matchLabels') ||
    Object.keys(f.namespaceSelector?.matchLabels || {}).length !== 1 ? undefined
    : f.namespaceSelector.matchLabels['kubernetes.io/metadata.name']);
  let web = false, scrape = false;
  for (const r of np.spec.ingress || []) {
    const froms = r.from || [];
    if (!froms.length) e.push('an ingress rule allows every source');
    const ports = r.ports || [];
    if (!ports.length) e.push('an ingress rule allows every port');
    if (ports.some((p) => (p.protocol || 'TCP') !== 'TCP' || p.endPort || typeof p.port !== 'number')) {
      e.push('ingress ports must be single TCP port numbers');
    }
    const nums = new Set(ports.map((p) => p.port));
    for (const f of froms) {
      const ns = nsOf(f);
      if (ns === 'ingress-nginx') {
        if (nums.has(METRICS_PORT)) e.push(`ingress-nginx must never reach ${METRICS_PORT} (/metrics)`);
        if ([...nums].some((n) => n !== 3000)) e.push('ingress from ingress-nginx must be TCP 3000 only');
        web = web || nums.has(3000);
      } else if (ns) {
        if ([...nums].some((n) => n !== METRICS_PORT)) e.push(`ingress from namespace ${ns} must be TCP ${METRICS_PORT} (/metrics) only`);
        scrape = scrape || nums.has(METRICS_PORT);
      } else {
        e.push(`ingress from ${JSON.stringify(f)} is not one named namespace`);
      }
    }
  }
  if (!web) e.push('no ingress rule: the ingress controller could not reach the pod');
  if (!scrape) e.push(`no ingress rule admitting TCP ${METRICS_PORT} from the monitoring namespace: Prometheus could not scrape`);
  // egress: DNS to kube-system, 5432, 443 to public addresses; nothing else
  const seen = new Set();
  for (const r of np.spec.egress || []) {
    const ports = r.ports || [];
    if (!ports.length) { e.push('an egress rule allows every port'); continue; }
    if (!(r.to || []).length) e.push('an egress rule allows every destination');
    for (const p of ports) {
      const key = `${p.protocol || 'TCP'}/${p.port}`;
      seen.add(key);
      if (p.endPort) e.push(`egress port range ${p.port}-${p.endPort}`);
      if (!['UDP/53', 'TCP/53', 'TCP/5432', 'TCP/443'].includes(key)) e.push(`egress to ${key} is not allowed`);
    }
    const portSet = new Set(ports.map((p) => p.port));
    for (const t of r.to || []) {
      if (portSet.has(53)) {
        if (t.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] !== 'kube-system' || t.ipBlock) {
          e.push('DNS must go to kube-system only');
        }
      } else if (portSet.has(443)) {
        if (!t.ipBlock || t.namespaceSelector || t.podSelector) e.push('HTTPS must go to ipBlocks only');
        else if (t.ipBlock.cidr === '0.0.0.0/0' && !PRIVATE_V4.every((c) => (t.ipBlock.except || []).includes(c))) {
          e.push(`HTTPS to 0.0.0.0/0 must except ${PRIVATE_V4.join(', ')}`);
        }
      } else if (portSet.has(5432)) {
        if (t.namespaceSelector) e.push('PostgreSQL egress must not open other namespaces by selector');
      }
    }
    if ([...portSet].some((p) => p === 53) && [...portSet].some((p) => p !== 53)) e.push('DNS rule mixes other ports');
  }
  for (const k of ['UDP/53', 'TCP/53', 'TCP/5432', 'TCP/443']) if (!seen.has(k)) e.push(`no egress for ${k}`);
  return e;
}

function backupChecks(ctx) {
  const cj = find(ctx.objs, 'CronJob', 'wapi-backup');
  if (!cj) return ['no CronJob wapi-backup'];
  const e = [];
  const f = String(cj.spec?.schedule || '').trim().split(/\s+/);
  if (f.length !== 5 || !/^\d+$/.test(f[0]) || !/^\d+$/.test(f[1]) || f.slice(2).some((x) => x !== '*')) {
    e.push(`schedule "${cj.spec?.schedule}" is not daily`);
  }
  if (cj.spec?.concurrencyPolicy !== 'Forbid') e.push('concurrencyPolicy must be Forbid');
  const pod = podSpecOf(cj) || {};
  const script = (pod.containers || []).map((c) => [...(c.command || []), ...(c.args || [])].join(' ')).join(' ');
  if (!/wapictl backup/.test(script)) e.push('the job does not run `wapictl backup`');
  if (!/kubectl exec/.test(script)) e.push('the job does not exec into the server pod');
  const sa = pod.serviceAccountName;
  const rb = ctx.objs.find((o) => o.kind === 'RoleBinding' && (o.subjects || []).some((s) => s.kind === 'ServiceAccount' && s.name === sa));
  if (!sa || !find(ctx.objs, 'ServiceAccount', sa)) e.push('the job needs its own ServiceAccount');
  if (!rb) return [...e, 'no RoleBinding for the job\'s ServiceAccount'];
  if (rb.roleRef?.kind !== 'Role') e.push('the job must be bound to a namespaced Role, not a ClusterRole');
  for (const s of rb.subjects) if (s.kind === 'ServiceAccount' && s.namespace !== cj.metadata.namespace) e.push('RoleBinding subject namespace differs');
  const role = find(ctx.objs, 'Role', rb.roleRef?.name);
  if (!role) return [...e, `no Role ${rb.roleRef?.name}`];
  const allowed = { pods: new Set(['get', 'list']), 'pods/exec': new Set(['create', 'get']) };
  for (const r of role.rules || []) {
    if ((r.apiGroups || []).some((g) => g !== '')) e.push(`Role grants API groups ${r.apiGroups}`);
    if (r.resourceNames === undefined && (r.nonResourceURLs || []).length) e.push('Role grants non-resource URLs');
    for (const res of r.resources || []) {
      if (!allowed[res]) { e.push(`Role grants ${res}`); continue; }
      for (const v of r.verbs || []) if (!allowed[res].has(v)) e.push(`Role grants ${v} on ${res}`);
    }
  }
  return e;
}

function namespaceChecks(ctx) {
  const e = [];
  const want = TARGETS[ctx.label].namespace;
  const ns = ctx.objs.find((o) => o.kind === 'Namespace');
  if (!ns || ns.metadata.name !== want) e.push(`no Namespace ${want}`);
  else if (ns.metadata.labels?.['pod-security.kubernetes.io/enforce'] !== 'restricted') e.push('namespace must enforce the restricted Pod Security profile');
  for (const o of ctx.objs) if (o.kind !== 'Namespace' && o.metadata?.namespace !== want) e.push(`${idOf(o)} not in namespace ${want}`);
  for (const o of ctx.objs) {
    for (const sub of o.subjects || []) {
      if (sub.kind === 'ServiceAccount' && sub.namespace !== want) e.push(`${idOf(o)} subject ${sub.name} in namespace ${sub.namespace}`);
    }
  }
  return e;
}

function overlayDriftChecks(ctx) {
  if (ctx.label === 'base') return [];
  const dir = TARGETS[ctx.label].dir;
  const base = (ctx.baseKustomization.resources || []).map((r) => path.resolve(KDIR, r));
  const mine = new Set((ctx.overlayKustomization.resources || []).map((r) => path.resolve(dir, r)));
  return base.filter((r) => !mine.has(r)).map((r) => `overlay misses base resource ${path.relative(KDIR, r)}`);
}

const FACT_CHECKS = [
  ['namespace', namespaceChecks],
  ['deployment', deploymentChecks],
  ['configmap', configChecks],
  ['secret', secretChecks],
  ['env names', envChecks],
  ['config values', configValueChecks],
  ['storage', storageChecks],
  ['service', serviceChecks],
  ['ingress', ingressChecks],
  ['hpa', hpaChecks],
  ['networkpolicy', networkPolicyChecks],
  ['backup cronjob', backupChecks],
  ['overlay drift', overlayDriftChecks],
];

// All checks over one context: {check name -> problems}.
async function runAll(ctx) {
  const res = new Map();
  for (const o of ctx.objs) {
    res.set(`schema ${idOf(o)}`, [...(await schemaErrors(o)), ...(o.apiVersion && o.kind ? unknownFieldErrors(o) : [])]);
    const spec = podSpecOf(o);
    if (spec) res.set(`restricted ${idOf(o)}`, restrictedViolations(spec, podMetaOf(o)));
  }
  if (ctx.label === 'base' && ctx.secretExample) {
    const s = ctx.secretExample;
    res.set(`schema ${idOf(s)} (secret.example.yaml)`, [...(await schemaErrors(s)), ...unknownFieldErrors(s)]);
  }
  for (const [name, fn] of FACT_CHECKS) res.set(name, fn(ctx));
  return res;
}

// ---------------------------------------------------- deliberate breakages
// [label, context ('base'|'dev'|'staging'), the check expected to reject it, mutation]
const dep = (ctx) => find(ctx.objs, 'Deployment', 'wapi');
const wapiC = (ctx) => dep(ctx).spec.template.spec.containers[0];
const cmData = (ctx) => find(ctx.objs, 'ConfigMap', 'wapi-config').data;
const cronPod = (ctx) => podSpecOf(find(ctx.objs, 'CronJob', 'wapi-backup'));
const BREAKAGES = [
  ['replicas 2', 'base', 'deployment', (c) => { dep(c).spec.replicas = 2; }],
  ['strategy RollingUpdate', 'base', 'deployment', (c) => { dep(c).spec.strategy = { type: 'RollingUpdate' }; }],
  ['pod runAsUser 0', 'base', 'restricted Deployment/wapi', (c) => { dep(c).spec.template.spec.securityContext.runAsUser = 0; }],
  ['container privileged true', 'base', 'restricted Deployment/wapi', (c) => { wapiC(c).securityContext.privileged = true; }],
  ['hostNetwork true', 'base', 'restricted Deployment/wapi', (c) => { dep(c).spec.template.spec.hostNetwork = true; }],
  ['capability NET_ADMIN added', 'base', 'restricted Deployment/wapi', (c) => { wapiC(c).securityContext.capabilities.add = ['NET_ADMIN']; }],
  ['seccomp Unconfined', 'base', 'restricted Deployment/wapi', (c) => {
    dep(c).spec.template.spec.securityContext.seccompProfile.type = 'Unconfined';
    wapiC(c).securityContext.seccompProfile.type = 'Unconfined';
  }],
  ['backup job allowPrivilegeEscalation true', 'base', 'restricted CronJob/wapi-backup', (c) => {
    cronPod(c).containers[0].securityContext.allowPrivilegeEscalation = true;
  }],
  ['backup job hostPath volume', 'base', 'restricted CronJob/wapi-backup', (c) => {
    cronPod(c).volumes.push({ name: 'host', hostPath: { path: '/' } });
  }],
  ['dev postgres runs as root', 'dev', 'restricted StatefulSet/postgres', (c) => {
    const p = podSpecOf(find(c.objs, 'StatefulSet', 'postgres'));
    p.securityContext.runAsUser = 0;
    p.containers[0].securityContext.runAsUser = 0;
  }],
  ['unknown field (typo readinessProbe.httpGet.pathh)', 'base', 'schema Deployment/wapi', (c) => {
    wapiC(c).readinessProbe.httpGet.pathh = '/readyz';
  }],
  ['unknown field (spec.replica)', 'base', 'schema Deployment/wapi', (c) => { dep(c).spec.replica = 1; }],
  ['missing required field (container name)', 'base', 'schema Deployment/wapi', (c) => { delete wapiC(c).name; }],
  ['missing required field (Service port)', 'base', 'schema Service/wapi', (c) => {
    delete find(c.objs, 'Service', 'wapi').spec.ports[0].port;
  }],
  ['wrong type (replicas "1")', 'base', 'schema Deployment/wapi', (c) => { dep(c).spec.replicas = '1'; }],
  ['env name the server does not read', 'base', 'env names', (c) => { cmData(c).WAPI_NOT_A_SETTING = 'x'; }],
  ['env name the server reads but nobody sets', 'base', 'env names', (c) => { delete cmData(c).WAPI_LOG_LEVEL; }],
  ['log level the server does not know', 'base', 'config values', (c) => { cmData(c).WAPI_LOG_LEVEL = 'verbose'; }],
  ['WAPI_WORKERS 0', 'dev', 'config values', (c) => { cmData(c).WAPI_WORKERS = '0'; }],
  ['secret in the ConfigMap', 'base', 'configmap', (c) => { cmData(c).DATABASE_URL = 'postgresql://x'; }],
  ['terminationGracePeriodSeconds 20', 'base', 'deployment', (c) => { dep(c).spec.template.spec.terminationGracePeriodSeconds = 20; }],
  ['readiness probe on /', 'base', 'deployment', (c) => { wapiC(c).readinessProbe.httpGet.path = '/'; }],
  ['no startupProbe', 'base', 'deployment', (c) => { delete wapiC(c).startupProbe; }],
  ['readOnlyRootFilesystem false', 'base', 'deployment', (c) => { wapiC(c).securityContext.readOnlyRootFilesystem = false; }],
  ['fsGroup 1000', 'base', 'deployment', (c) => { dep(c).spec.template.spec.securityContext.fsGroup = 1000; }],
  ['enableServiceLinks true', 'base', 'deployment', (c) => { dep(c).spec.template.spec.enableServiceLinks = true; }],
  ['sessions mounted elsewhere', 'base', 'deployment', (c) => { wapiC(c).volumeMounts[0].mountPath = '/data'; }],
  ['memory limit 1Gi', 'base', 'deployment', (c) => { wapiC(c).resources.limits.memory = '1Gi'; }],
  ['Service targetPort 8080', 'base', 'service', (c) => { find(c.objs, 'Service', 'wapi').spec.ports[0].targetPort = 8080; }],
  ['HPA maxReplicas 3', 'base', 'hpa', (c) => { find(c.objs, 'HorizontalPodAutoscaler', 'wapi').spec.maxReplicas = 3; }],
  ['media PVC ReadWriteMany', 'base', 'storage', (c) => { find(c.objs, 'PersistentVolumeClaim', 'media').spec.accessModes = ['ReadWriteMany']; }],
  ['sessions PVC 1Gi', 'base', 'storage', (c) => { find(c.objs, 'PersistentVolumeClaim', 'whatsapp-sessions').spec.resources.requests.storage = '1Gi'; }],
  ['egress to SSH anywhere', 'base', 'networkpolicy', (c) => {
    find(c.objs, 'NetworkPolicy', 'wapi').spec.egress.push({ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ protocol: 'TCP', port: 22 }] });
  }],
  ['HTTPS egress into private ranges', 'base', 'networkpolicy', (c) => {
    const r = find(c.objs, 'NetworkPolicy', 'wapi').spec.egress.find((x) => x.ports.some((p) => p.port === 443));
    r.to[0].ipBlock.except = [];
  }],
  ['ingress from any namespace', 'base', 'networkpolicy', (c) => {
    find(c.objs, 'NetworkPolicy', 'wapi').spec.ingress[0].from = [{ namespaceSelector: {} }];
  }],
  ['ingress admits the metrics port from ingress-nginx', 'base', 'networkpolicy', (c) => {
    find(c.objs, 'NetworkPolicy', 'wapi').spec.ingress[0].ports.push({ protocol: 'TCP', port: 9464 });
  }],
  ['metrics port admitted from every namespace', 'base', 'networkpolicy', (c) => {
    const r = find(c.objs, 'NetworkPolicy', 'wapi').spec.ingress.find((x) => x.ports.some((p) => p.port === 9464));
    r.from = [{ namespaceSelector: {} }];
  }],
  ['monitoring namespace reaches port 3000', 'base', 'networkpolicy', (c) => {
    find(c.objs, 'NetworkPolicy', 'wapi').spec.ingress.find((x) => x.ports.some((p) => p.port === 9464)).ports.push({ protocol: 'TCP', port: 3000 });
  }],
  ['no rule for the monitoring namespace', 'base', 'networkpolicy', (c) => {
    const np = find(c.objs, 'NetworkPolicy', 'wapi');
    np.spec.ingress = np.spec.ingress.filter((x) => !x.ports.some((p) => p.port === 9464));
  }],
  ['ingress port range over 9464', 'base', 'networkpolicy', (c) => {
    find(c.objs, 'NetworkPolicy', 'wapi').spec.ingress[0].ports[0].endPort = 9999;
  }],
  ['Ingress backend on the metrics port', 'base', 'ingress', (c) => {
    find(c.objs, 'Ingress', 'wapi').spec.rules[0].http.paths.push({ path: '/metrics', pathType: 'Exact',
      backend: { service: { name: 'wapi', port: { name: 'metrics' } } } });
  }],
  ['Ingress backend on port number 9464', 'base', 'ingress', (c) => {
    find(c.objs, 'Ingress', 'wapi').spec.rules[0].http.paths[0].backend.service.port = { number: 9464 };
  }],
  ['Service without the metrics port', 'base', 'service', (c) => {
    const svc = find(c.objs, 'Service', 'wapi');
    svc.spec.ports = svc.spec.ports.filter((p) => p.name !== 'metrics');
  }],
  ['Service metrics port to 3000', 'base', 'service', (c) => {
    find(c.objs, 'Service', 'wapi').spec.ports.find((p) => p.name === 'metrics').targetPort = 3000;
  }],
  ['no container port named metrics', 'base', 'deployment', (c) => {
    wapiC(c).ports = wapiC(c).ports.filter((p) => p.name !== 'metrics');
  }],
  ['prometheus.io/port on the http port', 'base', 'deployment', (c) => {
    dep(c).spec.template.metadata.annotations['prometheus.io/port'] = '3000';
  }],
  ['liveness probe on the metrics port', 'base', 'deployment', (c) => { wapiC(c).livenessProbe.httpGet.port = 'metrics'; }],
  ['WAPI_METRICS_LISTEN unset (/metrics back on the Ingress)', 'base', 'configmap', (c) => { delete cmData(c).WAPI_METRICS_LISTEN; }],
  ['WAPI_METRICS_LISTEN on loopback', 'dev', 'configmap', (c) => { cmData(c).WAPI_METRICS_LISTEN = '127.0.0.1:9464'; }],
  ['WAPI_METRICS_LISTEN on the main port', 'base', 'config values', (c) => { cmData(c).WAPI_METRICS_LISTEN = '0.0.0.0:3000'; }],
  ['WAPI_METRICS_LISTEN missing, though the server reads it', 'base', 'env names', (c) => { delete cmData(c).WAPI_METRICS_LISTEN; }],
  ['ingress buffering SSE', 'base', 'ingress', (c) => {
    find(c.objs, 'Ingress', 'wapi').metadata.annotations['nginx.ingress.kubernetes.io/proxy-buffering'] = 'on';
  }],
  ['backup Role may delete pods', 'base', 'backup cronjob', (c) => { find(c.objs, 'Role', 'wapi-backup').rules[0].verbs.push('delete'); }],
  ['backup bound to a ClusterRole', 'base', 'backup cronjob', (c) => { find(c.objs, 'RoleBinding', 'wapi-backup').roleRef.kind = 'ClusterRole'; }],
  ['real-looking secret in the example', 'base', 'secret', (c) => { c.secretExample.stringData.BETTER_AUTH_SECRET = 'x'.repeat(48); }],
  ['dev overlay drops a base file', 'dev', 'overlay drift', (c) => {
    c.overlayKustomization.resources = c.overlayKustomization.resources.filter((r) => !/hpa/.test(r));
  }],
  ['staging overlay drops a base file', 'staging', 'overlay drift', (c) => {
    c.overlayKustomization.resources = c.overlayKustomization.resources.filter((r) => !/networkpolicy/.test(r));
  }],
  ['staging object left in namespace wapi', 'staging', 'namespace', (c) => { dep(c).metadata.namespace = 'wapi'; }],
  ['staging backup RoleBinding subject in wapi', 'staging', 'namespace', (c) => {
    find(c.objs, 'RoleBinding', 'wapi-backup').subjects[0].namespace = 'wapi';
  }],
  ['staging with NODE_ENV development', 'staging', 'configmap', (c) => { cmData(c).NODE_ENV = 'development'; }],
  ['staging BETTER_AUTH_URL left on production', 'staging', 'configmap', (c) => { cmData(c).BETTER_AUTH_URL = 'https://your-domain.com'; }],
  ['staging Ingress on the production host', 'staging', 'ingress', (c) => { find(c.objs, 'Ingress', 'wapi').spec.rules[0].host = 'your-domain.com'; }],
  ['staging without an Ingress', 'staging', 'ingress', (c) => { c.objs = c.objs.filter((o) => o.kind !== 'Ingress'); }],
  ['staging carrying a Secret', 'staging', 'secret', (c) => {
    c.objs.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wapi-secrets', namespace: 'wapi-staging' }, stringData: {} });
  }],
  ['staging pod runs as root', 'staging', 'restricted Deployment/wapi', (c) => { dep(c).spec.template.spec.securityContext.runAsUser = 0; }],
  // the numbers, one at a time (made by deploy.sh number add; see NUMBERS)
  ['replicas 2', 'number-alpha', 'deployment', (c) => { dep(c).spec.replicas = 2; }],
  ['strategy RollingUpdate', 'number-gamma', 'deployment', (c) => { dep(c).spec.strategy = { type: 'RollingUpdate' }; }],
  ['pod runs as root', 'number-beta', 'restricted Deployment/wapi', (c) => { dep(c).spec.template.spec.securityContext.runAsUser = 0; }],
  ['BETTER_AUTH_URL without the number\'s path', 'number-beta', 'configmap', (c) => { cmData(c).BETTER_AUTH_URL = 'https://api.example.com'; }],
  ['Ingress on another number\'s host', 'number-alpha', 'ingress', (c) => { find(c.objs, 'Ingress', 'wapi').spec.rules[0].host = 'gamma.your-domain.com'; }],
  ['object outside the number\'s namespace', 'number-gamma', 'namespace', (c) => { find(c.objs, 'Service', 'wapi').metadata.namespace = 'wapi'; }],
  ['overlay drops a base file', 'number-alpha', 'overlay drift', (c) => {
    c.overlayKustomization.resources = c.overlayKustomization.resources.filter((r) => !/networkpolicy/.test(r));
  }],
];

// ------------------------------------------------- many numbers on one cluster
// Three numbers made the way a user makes them, with `deploy.sh number add`
// into a temporary folder: by host, by path on a shared host, and in a
// namespace given with -n. Each is rendered and checked like the targets
// above (as "number-NAME"), then the three together: nothing of one may be,
// or select, anything of another.
const INSTANCE = 'app.kubernetes.io/instance';
const NUMBERS = [
  { name: 'alpha', args: ['number', 'add', 'alpha', '--host', 'alpha.example.com'],
    namespace: 'wapi-alpha', host: 'alpha.example.com', url: 'https://alpha.example.com' },
  { name: 'beta', args: ['number', 'add', 'beta', '--host', 'api.example.com', '--path', '/beta'],
    namespace: 'wapi-beta', host: 'api.example.com', url: 'https://api.example.com/beta' },
  { name: 'gamma', args: ['-n', 'wapi-gamma-prod', 'number', 'add', 'gamma'],
    namespace: 'wapi-gamma-prod', host: 'gamma.your-domain.com', url: 'https://gamma.your-domain.com' },
];

function makeNumbers(dir) {
  const env = { ...process.env, WAPI_NUMBERS_DIR: dir };
  for (const k of ['WAPI_NAMESPACE', 'WAPI_OVERLAY', 'WAPI_KUSTOMIZE_DIR', 'WAPI_IMAGE']) delete env[k];
  for (const n of NUMBERS) {
    const r = spawnSync('bash', [path.join(ROOT, 'deploy.sh'), ...n.args], { env, encoding: 'utf8', timeout: 30000 });
    const d = path.join(dir, n.name);
    const errs = [];
    if (r.status !== 0) errs.push(`exit ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}`);
    else if (!fs.existsSync(path.join(d, 'kustomization.yaml')) || !fs.existsSync(path.join(d, 'number.yaml'))) errs.push('no kustomization.yaml and number.yaml');
    report(`deploy.sh ${n.args.join(' ')}`, errs);
    if (!errs.length) {
      TARGETS[`number-${n.name}`] = { dir: d, namespace: n.namespace, host: n.host, url: n.url, prod: true, number: n.name };
    }
  }
}

const selects = (sel, labels) => Object.keys(sel || {}).length > 0 &&
  Object.entries(sel).every(([k, v]) => (labels || {})[k] === v);
const podTemplatesOf = (objs) => objs.filter((o) => podSpecOf(o))
  .map((o) => ({ id: idOf(o), labels: podMetaOf(o)?.labels || {}, server: o.kind === 'Deployment' && o.metadata?.name === 'wapi' }));
function serverSelectorsOf(objs) {
  return [
    ['Deployment/wapi selector', find(objs, 'Deployment', 'wapi')?.spec?.selector?.matchLabels],
    ['Service/wapi selector', find(objs, 'Service', 'wapi')?.spec?.selector],
    ['NetworkPolicy/wapi podSelector', find(objs, 'NetworkPolicy', 'wapi')?.spec?.podSelector?.matchLabels],
  ];
}

function collisionChecks(ctx) {
  const e = [];
  const owner = new Map();
  const nsOwner = new Map();
  for (const s of ctx.sets) {
    for (const o of s.objs) {
      const key = CLUSTER_SCOPED.has(o.kind) ? `${o.kind}/${o.metadata?.name}` : `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
      if (owner.has(key) && owner.get(key) !== s.name) e.push(`${key} belongs to ${owner.get(key)} and ${s.name}`);
      owner.set(key, s.name);
      const ns = o.kind === 'Namespace' ? o.metadata?.name : o.metadata?.namespace;
      if (ns && nsOwner.has(ns) && nsOwner.get(ns) !== s.name) e.push(`namespace ${ns} holds objects of ${nsOwner.get(ns)} and ${s.name}`);
      if (ns) nsOwner.set(ns, s.name);
    }
  }
  return [...new Set(e)];
}

function claimChecks(ctx) {
  const e = [];
  const owner = new Map();
  for (const s of ctx.sets) {
    for (const o of s.objs) {
      for (const v of podSpecOf(o)?.volumes || []) {
        if (!v.persistentVolumeClaim) continue;
        const key = `${o.metadata?.namespace}/${v.persistentVolumeClaim.claimName}`;
        if (owner.has(key) && owner.get(key) !== s.name) e.push(`claim ${key} mounted by pods of ${owner.get(key)} and ${s.name}`);
        owner.set(key, s.name);
        const pvc = s.objs.find((p) => p.kind === 'PersistentVolumeClaim' && p.metadata?.name === v.persistentVolumeClaim.claimName &&
          p.metadata?.namespace === o.metadata?.namespace);
        if (!pvc) e.push(`${s.name}: ${idOf(o)} mounts ${key}, which the number does not own`);
      }
    }
  }
  return e;
}

function onePodChecks(ctx) {
  const e = [];
  for (const s of ctx.sets) {
    const deps = s.objs.filter((o) => o.kind === 'Deployment');
    if (deps.length !== 1) { e.push(`${s.name}: ${deps.length} Deployments, must be 1`); continue; }
    if (deps[0].spec?.replicas !== 1) e.push(`${s.name}: replicas ${deps[0].spec?.replicas}, must be 1`);
    if (deps[0].spec?.strategy?.type !== 'Recreate') e.push(`${s.name}: strategy ${deps[0].spec?.strategy?.type}, must be Recreate`);
  }
  return e;
}

function selectorChecks(ctx) {
  const e = [];
  for (const s of ctx.sets) {
    const own = podTemplatesOf(s.objs).find((t) => t.server);
    for (const [what, sel] of serverSelectorsOf(s.objs)) {
      if (!sel) { e.push(`${s.name}: no ${what}`); continue; }
      if (sel[INSTANCE] !== s.name) e.push(`${s.name}: ${what} lacks ${INSTANCE}=${s.name}`);
      if (!own || !selects(sel, own.labels)) e.push(`${s.name}: ${what} does not select its own server pod`);
      for (const t of ctx.sets) {
        if (t === s) continue;
        for (const p of podTemplatesOf(t.objs)) if (selects(sel, p.labels)) e.push(`${s.name}: ${what} selects ${t.name}'s ${p.id} pod`);
      }
    }
  }
  return e;
}

function instanceLabelChecks(ctx) {
  const e = [];
  for (const s of ctx.sets) {
    for (const o of s.objs) if (o.metadata?.labels?.[INSTANCE] !== s.name) e.push(`${s.name}: ${idOf(o)} lacks ${INSTANCE}=${s.name}`);
    for (const p of podTemplatesOf(s.objs)) if (p.labels[INSTANCE] !== s.name) e.push(`${s.name}: pod template of ${p.id} lacks ${INSTANCE}`);
  }
  return e;
}

function secretDatabaseChecks(ctx) {
  const e = [];
  const secrets = new Map();
  const dbs = new Map();
  for (const s of ctx.sets) {
    for (const o of s.objs) if (o.kind === 'Secret') e.push(`${s.name}: renders ${idOf(o)}; credentials are made by deploy.sh secret, never kept in the overlay`);
    const dep = find(s.objs, 'Deployment', 'wapi');
    const c = dep?.spec?.template?.spec?.containers?.find((x) => x.name === 'wapi');
    const refs = (c?.envFrom || []).filter((r) => r.secretRef).map((r) => `${dep.metadata.namespace}/${r.secretRef.name}`);
    if (!refs.length) e.push(`${s.name}: the server reads no Secret`);
    for (const key of refs) {
      if (secrets.has(key) && secrets.get(key) !== s.name) e.push(`Secret ${key} read by ${secrets.get(key)} and ${s.name}`);
      secrets.set(key, s.name);
    }
    const db = s.number?.database;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(db || '')) e.push(`${s.name}: database ${JSON.stringify(db)} in number.yaml is not a plain PostgreSQL name`);
    else if (dbs.has(db)) e.push(`database ${db} used by ${dbs.get(db)} and ${s.name}`);
    else dbs.set(db, s.name);
  }
  return e;
}

function addressChecks(ctx) {
  const e = [];
  const seen = new Map();
  const hosts = new Map();
  const urls = new Map();
  for (const s of ctx.sets) {
    for (const ing of s.objs.filter((o) => o.kind === 'Ingress')) {
      for (const r of ing.spec?.rules || []) {
        for (const p of r.http?.paths || []) {
          const key = `${r.host}${p.path}`;
          if (seen.has(key) && seen.get(key) !== s.name) e.push(`${key} routed to ${seen.get(key)} and ${s.name}`);
          seen.set(key, s.name);
          const prefixed = p.path && p.path !== '/';
          const other = hosts.get(r.host);
          if (other && other.name !== s.name && (!prefixed || !other.prefixed)) e.push(`host ${r.host} shared by ${other.name} and ${s.name} without a path each`);
          hosts.set(r.host, { name: s.name, prefixed });
        }
      }
    }
    const url = find(s.objs, 'ConfigMap', 'wapi-config')?.data?.BETTER_AUTH_URL;
    if (urls.has(url)) e.push(`BETTER_AUTH_URL ${url} of ${urls.get(url)} and ${s.name}`);
    urls.set(url, s.name);
  }
  return e;
}

function peerSelectorChecks(ctx) {
  const e = [];
  for (const s of ctx.sets) {
    for (const np of s.objs.filter((o) => o.kind === 'NetworkPolicy')) {
      const peers = [...(np.spec?.ingress || []).flatMap((r) => r.from || []), ...(np.spec?.egress || []).flatMap((r) => r.to || [])];
      for (const p of peers) {
        if (p.podSelector?.matchLabels?.[INSTANCE] !== undefined) {
          e.push(`${s.name}: ${idOf(np)} peer ${JSON.stringify(p)} carries ${INSTANCE} (labels with includeSelectors?)`);
        }
        if (p.podSelector?.matchLabels?.['k8s-app'] === 'kube-dns' && Object.keys(p.podSelector.matchLabels).length !== 1) {
          e.push(`${s.name}: the DNS peer selector must be k8s-app=kube-dns only, got ${JSON.stringify(p.podSelector.matchLabels)}`);
        }
      }
    }
  }
  return e;
}

const NUMBERS_CHECKS = [
  ['numbers: no collisions', collisionChecks],
  ['numbers: claims', claimChecks],
  ['numbers: one pod each', onePodChecks],
  ['numbers: selectors', selectorChecks],
  ['numbers: instance labels', instanceLabelChecks],
  ['numbers: secrets and databases', secretDatabaseChecks],
  ['numbers: addresses', addressChecks],
  ['numbers: networkpolicy peers', peerSelectorChecks],
];
const numbersChecks = (ctx) => new Map(NUMBERS_CHECKS.map(([name, fn]) => [name, fn(ctx)]));

// ------------------------------------------------------- monitoring component
// kubernetes/components/monitoring: the ServiceMonitor scrapes the port the
// server serves /metrics on, and every metric its rules and dashboard name is
// one common/metrics.c defines (so a renamed metric fails here), or one of a
// few from Prometheus, the kubelet and kube-state-metrics.
const MONITORING = path.join(KDIR, 'components/monitoring');
const METRICS_SRC = path.join(ROOT, 'common/metrics.c');
const OTHER_METRICS = new Map([
  ['up', 'Prometheus'],
  ['kubelet_volume_stats_available_bytes', 'kubelet'],
  ['kubelet_volume_stats_capacity_bytes', 'kubelet'],
  ['kubelet_volume_stats_used_bytes', 'kubelet'],
  ['kube_deployment_status_replicas_available', 'kube-state-metrics'],
]);

function serverMetricNames() {
  let text;
  try { text = fs.readFileSync(METRICS_SRC, 'utf8'); } catch (e) { return { error: `cannot read ${path.relative(ROOT, METRICS_SRC)}: ${e.message}` }; }
  const names = new Set();
  for (const m of text.matchAll(/# TYPE (wapi_[a-z0-9_]+) (counter|gauge|histogram|summary)\b/g)) {
    names.add(m[1]);
    if (m[2] === 'histogram') for (const x of ['_bucket', '_sum', '_count']) names.add(m[1] + x);
    if (m[2] === 'summary') for (const x of ['_sum', '_count']) names.add(m[1] + x);
  }
  return names.size ? { names } : { error: `no "# TYPE wapi_…" line in ${path.relative(ROOT, METRICS_SRC)}` };
}

// Syntax errors and metric names of a PromQL expression (Prometheus's own
// grammar, @prometheus-io/lezer-promql).
function promql(expr) {
  const errors = [];
  const names = [];
  if (typeof expr !== 'string' || !expr.trim()) return { errors: ['empty expression'], names };
  promqlParser.parse(expr).iterate({
    enter(n) {
      if (n.type.isError) errors.push(`syntax error at ${n.from}: …${expr.slice(Math.max(0, n.from - 15), n.from + 15)}…`);
      else if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.push(expr.slice(n.from, n.to));
      else if (n.name === 'LabelName' && expr.slice(n.from, n.to) === '__name__') errors.push('selects by __name__; name the metric');
    },
  });
  return { errors, names };
}
function metricErrors(expr, ctx, where) {
  const { errors, names } = promql(expr);
  const e = errors.map((x) => `${where}: ${x}`);
  if (ctx.serverMetrics.error) return [...e, ctx.serverMetrics.error];
  for (const n of names) {
    if (n.startsWith('wapi_')) {
      if (!ctx.serverMetrics.names.has(n)) e.push(`${where}: ${n} is not a metric the server defines (${path.relative(ROOT, METRICS_SRC)})`);
    } else if (!OTHER_METRICS.has(n)) {
      e.push(`${where}: ${n} is neither the server's nor one of ${[...OTHER_METRICS.keys()].join(', ')}`);
    }
  }
  return e;
}

function serviceMonitorChecks(ctx) {
  const sm = find(ctx.objs, 'ServiceMonitor', 'wapi');
  if (!sm) return ['no ServiceMonitor wapi'];
  const e = [];
  if (sm.apiVersion !== 'monitoring.coreos.com/v1') e.push(`apiVersion ${sm.apiVersion}`);
  const svc = find(ctx.base, 'Service', 'wapi');
  const metricsPort = (svc?.spec?.ports || []).find((p) => p.port === METRICS_PORT);
  if (!selects(sm.spec?.selector?.matchLabels, svc?.metadata?.labels)) e.push('its selector does not select the Service wapi');
  if (sm.spec?.namespaceSelector?.any !== true) e.push('namespaceSelector must be any: true (every number\'s namespace)');
  if (svc?.metadata?.labels?.[sm.spec?.jobLabel] !== 'wapi') e.push('jobLabel must give job="wapi", as the rules and the dashboard expect');
  const eps = sm.spec?.endpoints || [];
  if (!eps.length) e.push('no endpoints');
  for (const ep of eps) {
    if (ep.port !== metricsPort?.name) e.push(`endpoint port ${ep.port}, must be the Service's metrics port ${metricsPort?.name}`);
    if (ep.path !== '/metrics') e.push(`endpoint path ${ep.path}, must be /metrics`);
    if (ep.targetPort !== undefined) e.push('use the Service port name, not targetPort');
  }
  return e;
}

const REQUIRED_ALERT_METRICS = ['up', 'kubelet_volume_stats_available_bytes', 'wapi_media_refusals_total'];
function ruleChecks(ctx) {
  const pr = find(ctx.objs, 'PrometheusRule', 'wapi');
  if (!pr) return ['no PrometheusRule wapi'];
  const e = [];
  if (pr.apiVersion !== 'monitoring.coreos.com/v1') e.push(`apiVersion ${pr.apiVersion}`);
  const rules = (pr.spec?.groups || []).flatMap((g) => g.rules || []);
  if (!rules.length) e.push('no rules');
  const used = new Set();
  for (const r of rules) {
    const where = r.alert || r.record || '(unnamed rule)';
    if (!/^Wapi[A-Za-z0-9]+$/.test(r.alert || '')) e.push(`${where}: alert names start with Wapi`);
    if (!['critical', 'warning'].includes(r.labels?.severity)) e.push(`${where}: severity ${r.labels?.severity}, must be critical or warning`);
    if (!r.annotations?.summary) e.push(`${where}: no summary`);
    if (r.for !== undefined && !/^\d+[smhd]$/.test(r.for)) e.push(`${where}: for ${r.for}`);
    e.push(...metricErrors(r.expr, ctx, where));
    for (const n of promql(r.expr).names) used.add(n);
  }
  for (const m of REQUIRED_ALERT_METRICS) if (!used.has(m)) e.push(`no alert on ${m}`);
  return e;
}

function dashboardChecks(ctx) {
  const cms = ctx.objs.filter((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.grafana_dashboard);
  if (cms.length !== 1) return [`${cms.length} ConfigMaps labelled grafana_dashboard, expected 1`];
  const files = Object.entries(cms[0].data || {}).filter(([k]) => k.endsWith('.json'));
  if (files.length !== 1) return ['the dashboard ConfigMap must hold one .json file'];
  let d;
  try { d = JSON.parse(files[0][1]); } catch (err) { return [`${files[0][0]} is not JSON: ${err.message}`]; }
  const e = [];
  if (!d.uid || !d.title) e.push('no uid or title');
  const panels = d.panels || [];
  if (!panels.length) e.push('no panels');
  let queries = 0;
  for (const p of panels) {
    for (const t of p.targets || []) {
      queries++;
      e.push(...metricErrors(t.expr, ctx, `panel "${p.title}" ${t.refId}`));
    }
  }
  if (!queries) e.push('no queries');
  for (const v of d.templating?.list || []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = /^label_values\((.+),\s*[a-zA-Z_]\w*\)$/.exec(q || '');
    if (!m) { e.push(`variable ${v.name}: expected label_values(SELECTOR, label), got ${q}`); continue; }
    e.push(...metricErrors(m[1], ctx, `variable ${v.name}`));
  }
  return e;
}

const MONITORING_CHECKS = [
  ['monitoring: servicemonitor', serviceMonitorChecks],
  ['monitoring: rules', ruleChecks],
  ['monitoring: dashboard', dashboardChecks],
];
const monitoringChecks = (ctx) => new Map(MONITORING_CHECKS.map(([name, fn]) => [name, fn(ctx)]));

// Breakages of the numbers together and of the monitoring component.
const setOf = (c, name) => c.sets.find((s) => s.name === name);
const rule = (c, alert) => find(c.objs, 'PrometheusRule', 'wapi').spec.groups.flatMap((g) => g.rules).find((r) => r.alert === alert);
const dashboard = (c, fn) => {
  const cm = c.objs.find((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.grafana_dashboard);
  const key = Object.keys(cm.data).find((k) => k.endsWith('.json'));
  const d = JSON.parse(cm.data[key]);
  fn(d);
  cm.data[key] = JSON.stringify(d);
};
const GROUP_BREAKAGES = [
  ['two numbers in one namespace', 'numbers', 'numbers: no collisions', (c) => {
    for (const o of setOf(c, 'beta').objs) {
      if (o.kind === 'Namespace') o.metadata.name = 'wapi-alpha'; else o.metadata.namespace = 'wapi-alpha';
    }
  }],
  ['a Service selector without the instance label', 'numbers', 'numbers: selectors', (c) => {
    delete find(setOf(c, 'beta').objs, 'Service', 'wapi').spec.selector[INSTANCE];
  }],
  ['a Deployment selector naming another number', 'numbers', 'numbers: selectors', (c) => {
    find(setOf(c, 'beta').objs, 'Deployment', 'wapi').spec.selector.matchLabels[INSTANCE] = 'alpha';
  }],
  ['two numbers mounting one claim', 'numbers', 'numbers: claims', (c) => {
    const d = find(setOf(c, 'beta').objs, 'Deployment', 'wapi');
    d.metadata.namespace = 'wapi-alpha';
    d.metadata.name = 'wapi-beta';
  }],
  ['one number replicated', 'numbers', 'numbers: one pod each', (c) => { find(setOf(c, 'gamma').objs, 'Deployment', 'wapi').spec.replicas = 2; }],
  ['two numbers on one database', 'numbers', 'numbers: secrets and databases', (c) => { setOf(c, 'beta').number.database = 'wapi_alpha'; }],
  ['a Secret kept in an overlay', 'numbers', 'numbers: secrets and databases', (c) => {
    setOf(c, 'gamma').objs.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wapi-secrets', namespace: 'wapi-gamma-prod', labels: { [INSTANCE]: 'gamma' } } });
  }],
  ['two numbers on one host without paths', 'numbers', 'numbers: addresses', (c) => {
    find(setOf(c, 'alpha').objs, 'Ingress', 'wapi').spec.rules[0].host = 'api.example.com';
  }],
  ['two numbers with one BETTER_AUTH_URL', 'numbers', 'numbers: addresses', (c) => {
    find(setOf(c, 'gamma').objs, 'ConfigMap', 'wapi-config').data.BETTER_AUTH_URL = 'https://alpha.example.com';
  }],
  ['the instance label in the DNS peer selector', 'numbers', 'numbers: networkpolicy peers', (c) => {
    const np = find(setOf(c, 'alpha').objs, 'NetworkPolicy', 'wapi');
    np.spec.egress.find((r) => r.ports.some((p) => p.port === 53)).to[0].podSelector.matchLabels[INSTANCE] = 'alpha';
  }],
  ['an object without the instance label', 'numbers', 'numbers: instance labels', (c) => {
    delete find(setOf(c, 'beta').objs, 'PersistentVolumeClaim', 'media').metadata.labels[INSTANCE];
  }],
  ['a rule on a metric the server does not define', 'monitoring', 'monitoring: rules', (c) => {
    const r = rule(c, 'WapiWorkerCrashes');
    r.expr = r.expr.replace('wapi_worker_crashes_total', 'wapi_worker_crash_total');
  }],
  ['the server no longer defines a metric a rule uses', 'monitoring', 'monitoring: rules', (c) => {
    c.serverMetrics.names.delete('wapi_db_errors_total');
  }],
  ['a rule on a metric from elsewhere', 'monitoring', 'monitoring: rules', (c) => {
    rule(c, 'WapiVolumeFilling').expr = 'node_filesystem_avail_bytes{mountpoint="/app/public/media"} < 1e9';
  }],
  ['a rule that does not parse', 'monitoring', 'monitoring: rules', (c) => { rule(c, 'WapiDatabaseErrors').expr = 'rate(wapi_db_errors_total[5m] > 0'; }],
  ['a rule without a severity', 'monitoring', 'monitoring: rules', (c) => { delete rule(c, 'WapiDown').labels.severity; }],
  ['no alert on the media store filling', 'monitoring', 'monitoring: rules', (c) => {
    const g = find(c.objs, 'PrometheusRule', 'wapi').spec.groups[0];
    g.rules = g.rules.filter((r) => r.alert !== 'WapiMediaStoreFull');
  }],
  ['a dashboard query on an unknown metric', 'monitoring', 'monitoring: dashboard', (c) => {
    dashboard(c, (d) => { d.panels.at(-1).targets[0].expr = 'rate(wapi_outbox_backlog_total[5m])'; });
  }],
  ['a dashboard variable on an unknown metric', 'monitoring', 'monitoring: dashboard', (c) => {
    dashboard(c, (d) => { d.templating.list.find((v) => v.type === 'query').query.query = 'label_values(wapi_sessions, namespace)'; });
  }],
  ['ServiceMonitor on the http port', 'monitoring', 'monitoring: servicemonitor', (c) => {
    find(c.objs, 'ServiceMonitor', 'wapi').spec.endpoints[0].port = 'http';
  }],
  ['ServiceMonitor selecting no wapi Service', 'monitoring', 'monitoring: servicemonitor', (c) => {
    find(c.objs, 'ServiceMonitor', 'wapi').spec.selector.matchLabels.app = 'wapi-server';
  }],
];

// --------------------------------------------------------------------- main

async function main() {
  const numbersDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-t-numbers-'));
  process.on('exit', () => fs.rmSync(numbersDir, { recursive: true, force: true }));
  makeNumbers(numbersDir);
  const baseKustomization = YAML.parse(fs.readFileSync(path.join(KDIR, 'kustomization.yaml'), 'utf8'));
  const overlayKustomizations = Object.fromEntries(Object.entries(TARGETS).filter(([l]) => l !== 'base')
    .map(([l, t]) => [l, YAML.parse(fs.readFileSync(path.join(t.dir, 'kustomization.yaml'), 'utf8'))]));
  const secretExample = parseDocs(fs.readFileSync(path.join(KDIR, 'secret.example.yaml'), 'utf8'), 'secret.example.yaml')[0];
  const serverNames = serverEnvNames();

  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-t-manifests-'));
  process.on('exit', () => fs.rmSync(emptyDir, { recursive: true, force: true }));
  const kubectl = hasKubectl();
  const rendered = {};
  for (const [label, { dir }] of Object.entries(TARGETS)) {
    const name = `render ${label} (${kubectl ? 'kubectl kustomize' : 'built-in kustomize subset'})`;
    try {
      rendered[label] = kubectl ? kubectlKustomize(dir) : fallbackKustomize(dir);
      report(name, rendered[label].length ? [] : ['no objects']);
    } catch (e) {
      fail(name, e.message);
    }
    if (kubectl && rendered[label]) {
      // The built-in subset, used where kubectl is missing, must agree.
      try {
        const mine = fallbackKustomize(dir);
        report(`built-in kustomize subset matches kubectl for ${label}`,
          canonical(mine) === canonical(rendered[label]) ? [] : ['renderings differ']);
      } catch (e) {
        fail(`built-in kustomize subset matches kubectl for ${label}`, e.message);
      }
    }
  }
  if (Object.keys(TARGETS).some((l) => !rendered[l])) { console.log('cannot go on without rendered manifests'); process.exit(1); }

  const ctxOf = (label) => ({
    label, objs: clone(rendered[label]), secretExample: clone(secretExample),
    baseKustomization: clone(baseKustomization), overlayKustomization: clone(overlayKustomizations[label] || null), serverNames,
    emptyDir,
  });
  const clean = {};
  for (const label of Object.keys(TARGETS)) {
    const res = await runAll(ctxOf(label));
    clean[label] = res;
    for (const [name, errs] of res) report(`${label}: ${name}`, errs);
  }

  // The numbers together, and the monitoring component.
  const numberLabels = Object.keys(TARGETS).filter((l) => TARGETS[l].number);
  const numberYaml = Object.fromEntries(numberLabels.map((l) => [l,
    YAML.parse(fs.readFileSync(path.join(TARGETS[l].dir, 'number.yaml'), 'utf8'))?.data || {}]));
  const groupCtx = {
    numbers: () => ({
      label: 'numbers',
      sets: numberLabels.map((l) => ({ name: TARGETS[l].number, objs: clone(rendered[l]), number: clone(numberYaml[l]) })),
    }),
    monitoring: () => ({
      label: 'monitoring', objs: clone(rendered.monitoring), base: clone(rendered.base), serverMetrics: serverMetricNames(),
    }),
  };
  const runFor = (ctx) => (ctx.label === 'numbers' ? numbersChecks(ctx) : ctx.label === 'monitoring' ? monitoringChecks(ctx) : runAll(ctx));
  report(`three numbers made and rendered (${numberLabels.join(', ')})`, numberLabels.length === NUMBERS.length ? [] : ['see the failures above']);
  {
    const name = `render components/monitoring (${kubectl ? 'kubectl kustomize' : 'built-in kustomize subset'})`;
    try {
      rendered.monitoring = kubectl ? kubectlKustomize(MONITORING) : fallbackKustomize(MONITORING);
      report(name, rendered.monitoring.length ? [] : ['no objects']);
      if (kubectl) {
        report('built-in kustomize subset matches kubectl for components/monitoring',
          canonical(fallbackKustomize(MONITORING)) === canonical(rendered.monitoring) ? [] : ['renderings differ']);
      }
    } catch (e) {
      fail(name, e.message);
    }
  }
  for (const group of ['numbers', 'monitoring']) {
    if (group === 'monitoring' && !rendered.monitoring) continue;
    const res = await runFor(groupCtx[group]());
    clean[group] = res;
    for (const [name, errs] of res) report(name, errs);
  }
  const ctxFor = (where) => (groupCtx[where] ? groupCtx[where]() : ctxOf(where));

  for (const [label, where, expected, mutate] of [...BREAKAGES, ...GROUP_BREAKAGES]) {
    const name = `rejects ${where}: ${label}`;
    if ((expected === 'env names' || expected === 'config values') && serverNames.error) { fail(name, `cannot try: ${serverNames.error}`); continue; }
    if (!clean[where]) { fail(name, `${where} was not rendered`); continue; }
    const ctx = ctxFor(where);
    try {
      mutate(ctx);
    } catch (e) {
      fail(name, `the breakage could not be applied: ${e.message}`);
      continue;
    }
    const res = await runFor(ctx);
    const got = res.get(expected);
    if (got === undefined) fail(name, `no check named "${expected}"`);
    else if (!got.length) fail(name, `"${expected}" accepted it`);
    else if (clean[where].get(expected)?.length) fail(name, `"${expected}" fails even without the breakage`);
    else pass(`${name} (${expected}: ${got[0]})`);
  }

  console.log(`${passes} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { fail('t_manifests crashed', e.stack || e); process.exit(1); });
