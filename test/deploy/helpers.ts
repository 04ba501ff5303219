// What the deployment tests share: the repository's paths, YAML, the Kustomize renderer, a
// .dockerignore matcher, Dockerfile stages, and the Kubernetes API type check.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, ModifiableInstruction, type Flag, type Instruction } from 'dockerfile-ast';
import { parseAllDocuments, parse as parseYamlText } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const rel = (...parts: string[]): string => path.join(ROOT, ...parts);
export const read = (file: string): string => readFileSync(rel(file), 'utf8');

// Manifests and compose files are plain data; `any` keeps the assertions readable.
export type Obj = any;

/** YAML as Compose reads it: merge keys (`<<: *anchor`) resolved. */
export function parseYaml(text: string): Obj {
  return parseYamlText(text, { merge: true, maxAliasCount: -1 });
}

/** The documents of a multi-document YAML stream, empty ones dropped. */
export function parseYamlStream(text: string): Obj[] {
  return parseAllDocuments(text, { merge: true })
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
      return doc.toJS();
    })
    .filter((d) => d !== null && d !== undefined);
}

// ---------------------------------------------------------------- kubectl kustomize

/** kubectl (with Kustomize built in): on PATH, or where scripts/env.sh puts it. */
export function findKubectl(): string | null {
  for (const candidate of [process.env.KUBECTL, 'kubectl', rel('.tools/kubectl/kubectl')]) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return null;
}

let kubectlPath: string | null | undefined;
export function kubectl(): string {
  if (kubectlPath === undefined) kubectlPath = findKubectl();
  if (!kubectlPath) throw new Error('kubectl not found: scripts/env.sh installs it (or set KUBECTL)');
  return kubectlPath;
}

/** Renders a kustomization directory offline, as `kubectl apply -k` would send it. */
export function kustomize(dir: string): Obj[] {
  const out = execFileSync(kubectl(), ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  return parseYamlStream(out);
}

/** A scratch directory inside the repository (var/ is ignored by git), removed by the caller. */
export function scratchDir(name: string): string {
  mkdirSync(rel('var'), { recursive: true });
  return mkdtempSync(path.join(rel('var'), `${name}-`));
}

// ---------------------------------------------------------------- Kubernetes API types

/** The kubernetes-models module of a kind: core and apps from kubernetes-models, KEDA's from its own package. */
export function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('keda.sh/')) return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/**
 * Checks every manifest against the Kubernetes API types of kubernetes-models, twice: at run time
 * with the models' validators (required fields, types, formats, enums), and with TypeScript,
 * each manifest a typed object literal, so that a field the API does not have (a typo, a field
 * at the wrong level) is an error instead of being dropped silently by the API server.
 * Returns the problems found, empty when all is well.
 */
export async function checkKubernetesTypes(manifests: Obj[]): Promise<string[]> {
  const problems: string[] = [];
  for (const m of manifests) {
    const where = `${m.kind}/${m.metadata?.name}`;
    let mod: Record<string, unknown>;
    try {
      mod = await import(modelModule(m.apiVersion, m.kind));
    } catch {
      problems.push(`${where}: no model for ${m.apiVersion} ${m.kind}`);
      continue;
    }
    const Model = mod[m.kind] as { new (data: unknown): { validate(): void } };
    try {
      new Model(structuredClone(m)).validate();
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) return problems;

  const dir = scratchDir('deploy-typecheck');
  try {
    const lines = manifests.map((m, i) => `import type { I${m.kind} as T${i} } from '${modelModule(m.apiVersion, m.kind)}';`);
    manifests.forEach((m, i) => lines.push(`// ${m.kind}/${m.metadata?.name}\nexport const m${i}: T${i} = ${JSON.stringify(m, null, 2)};`));
    writeFileSync(path.join(dir, 'manifests.ts'), `${lines.join('\n')}\n`);
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, skipLibCheck: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2024', types: [] },
        files: ['manifests.ts'],
      }),
    );
    const tsc = spawnSync(process.execPath, [rel('node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
    if (tsc.status !== 0) {
      const text = `${tsc.stdout}${tsc.stderr}`;
      const source = readFileSync(path.join(dir, 'manifests.ts'), 'utf8').split('\n');
      for (const line of text.split('\n').filter((l) => /error TS/.test(l))) {
        const at = /manifests\.ts\((\d+),/.exec(line);
        const n = at ? Number(at[1]) : 0;
        // name the manifest: the nearest `// Kind/name` comment above the error's line
        let owner = '';
        for (let k = n - 1; k >= 0 && !owner; k--) if (source[k]?.startsWith('// ')) owner = source[k]!.slice(3);
        problems.push(`${owner}: ${line.replace(/^.*error /, 'error ')}`);
      }
      if (problems.length === 0) problems.push(text.trim());
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return problems;
}

// ---------------------------------------------------------------- manifests

export const byKind = (manifests: Obj[], kind: string): Obj[] => manifests.filter((m) => m.kind === kind);

export function find(manifests: Obj[], kind: string, name: string): Obj {
  const m = manifests.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!m) throw new Error(`no ${kind}/${name} among ${manifests.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return m;
}

/** The pod template of a workload (Deployment, StatefulSet, Job). */
export const podTemplate = (workload: Obj): Obj => workload.spec.template;
export const workloads = (manifests: Obj[]): Obj[] => manifests.filter((m) => ['Deployment', 'StatefulSet', 'Job', 'DaemonSet'].includes(m.kind));

export function container(workload: Obj, name: string): Obj {
  const c = podTemplate(workload).spec.containers.find((x: Obj) => x.name === name);
  if (!c) throw new Error(`${workload.metadata.name} has no container ${name}`);
  return c;
}

/** The value of an environment variable set with `value` (undefined when absent or from a ref). */
export const envValue = (c: Obj, name: string): string | undefined => c.env?.find((e: Obj) => e.name === name)?.value;
export const envEntry = (c: Obj, name: string): Obj => c.env?.find((e: Obj) => e.name === name);

/** Whether a matchLabels selector selects these labels. */
export function selects(selector: Obj, labels: Record<string, string>): boolean {
  if (selector.matchExpressions?.length) throw new Error('matchExpressions are not evaluated here');
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

// ---------------------------------------------------------------- Dockerfiles

export interface Stage {
  name: string | null;
  /** The FROM image, or the name of the stage it builds on. */
  from: string;
  instructions: Instruction[];
}

export function dockerfileStages(file: string): { stages: Stage[]; text: string } {
  const text = read(file);
  const df = DockerfileParser.parse(text);
  const stages: Stage[] = [];
  for (const ins of df.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const [image, as, name] = ins.getArguments().map((a) => a.getValue());
      stages.push({ name: as?.toUpperCase() === 'AS' ? (name ?? null) : null, from: image!, instructions: [ins] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return { stages, text };
}

/** The stage and the stages it builds on, nearest first. */
export function stageChain(stages: Stage[], name: string): Stage[] {
  const chain: Stage[] = [];
  let stage = stages.find((s) => s.name === name);
  while (stage) {
    chain.push(stage);
    stage = stages.find((s) => s.name === stage!.from);
  }
  return chain;
}

/** The last value of an instruction in a stage or, failing that, in the stages it builds on. */
export function effective(stages: Stage[], name: string, keyword: string): Instruction | undefined {
  for (const stage of stageChain(stages, name)) {
    const found = stage.instructions.filter((i) => i.getKeyword() === keyword).at(-1);
    if (found) return found;
  }
  return undefined;
}

/** An instruction's flags (`--from=deps`, `--interval=30s`); none for those that take no flags. */
export const flags = (ins: Instruction): Flag[] => (ins instanceof ModifiableInstruction ? ins.getFlags() : []);
export const hasFlag = (ins: Instruction, name: string, value?: string): boolean =>
  flags(ins).some((f) => f.getName() === name && (value === undefined || f.getValue() === value));

/** The exec-form (JSON) command of CMD, ENTRYPOINT or HEALTHCHECK ... CMD. */
export function jsonCommand(ins: Instruction): string[] {
  const content = ins.getArgumentsContent() ?? '';
  const json = content.slice(content.indexOf('['));
  return JSON.parse(json.replace(/\\\n/g, ''));
}

// ---------------------------------------------------------------- .dockerignore

/** Docker's .dockerignore rules, in order: the last rule that matches a path or a parent of it wins. */
export function dockerignore(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      const re = pattern
        .split('/')
        .map((part) => (part === '**' ? '.*' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (file: string) => {
    const parts = path.posix.normalize(file).replace(/\/+$/, '').split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = !rule.negate;
    return excluded;
  };
}

/** Files git tracks under a path (the repository's own files, nothing built or installed). */
export function trackedFiles(under: string): string[] {
  if (!existsSync(rel('.git'))) return [];
  return execFileSync('git', ['ls-files', '--', under], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
}
