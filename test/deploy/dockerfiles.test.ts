// The Dockerfiles, checked without a Docker daemon: parsed with dockerfile-ast and linted with
// dockerfile-utils (the parser and validator behind VS Code's Docker support), then asserted:
// multi-stage, a non-root user in every image, health checks, production dependencies only, the
// worker installed from its pinned requirements, and every COPY source in the repository and
// inside the build context that .dockerignore leaves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { validate, ValidationSeverity } from 'dockerfile-utils';
import { awaitWorkers } from '../../docker/await-workers.ts';
import { dockerfileStages, dockerignore, effective, hasFlag, jsonCommand, read, rel, stageChain, trackedFiles, type Stage } from './helpers.ts';

const SERVICES = 'docker/services.Dockerfile';
const WORKER = 'docker/worker.Dockerfile';
const services = dockerfileStages(SERVICES);
const worker = dockerfileStages(WORKER);

const keyword = (stage: Stage, k: string) => stage.instructions.filter((i) => i.getKeyword() === k);
const stage = (stages: Stage[], name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s, `stage ${name}`);
  return s;
};
/** `RUN` lines of a stage as text, continuation lines joined. */
const runs = (s: Stage) => keyword(s, 'RUN').map((i) => (i.getArgumentsContent() ?? '').replace(/\\\n/g, ' '));
const userOf = (stages: Stage[], name: string) => effective(stages, name, 'USER')?.getArgumentsContent()?.trim();

test('both Dockerfiles parse and lint without errors', () => {
  for (const { text } of [services, worker]) {
    const errors = validate(text).filter((d) => d.severity === ValidationSeverity.ERROR);
    assert.deepEqual(errors.map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  }
});

test('the images are multi-stage: dependencies are installed in one stage and copied into the next', () => {
  assert.ok(services.stages.length >= 2 && worker.stages.length >= 2);
  assert.ok(keyword(stage(services.stages, 'runtime'), 'COPY').some((c) => hasFlag(c, 'from', 'deps')));
  assert.ok(keyword(stage(worker.stages, 'runtime'), 'COPY').some((c) => hasFlag(c, 'from', 'build')));
});

test('services image: Node 24 slim, production dependencies only, the API and the dispatcher as targets', () => {
  assert.match(read(SERVICES), /^ARG NODE_IMAGE=node:24[^\s]*-slim$/m);
  const deps = stage(services.stages, 'deps');
  assert.ok(runs(deps).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), 'npm ci --omit=dev');
  assert.ok(!runs(deps).some((r) => /\bnpm (install|i)\b/.test(r)), 'npm ci, not npm install');
  const cmd = (name: string) => jsonCommand(effective(services.stages, name, 'CMD')!);
  assert.deepEqual(cmd('api'), ['node', 'services/api/src/server.ts']);
  assert.deepEqual(cmd('dispatcher'), ['node', 'docker/await-workers.ts', 'services/dispatcher/src/main.ts']);
  for (const file of [...cmd('api'), ...cmd('dispatcher')].filter((a) => a.endsWith('.ts'))) assert.ok(existsSync(rel(file)), file);
  // every npm workspace is inside what the deps stage copies, or `npm ci` would fail
  const workspaces: string[] = JSON.parse(read('package.json')).workspaces;
  for (const ws of workspaces) assert.ok(ws.startsWith('services/'), `${ws} is copied with services/`);
});

test("dispatcher image: the study process's Python, pinned by the workers' lock, without torch, named by MAKAM_STUDY_PYTHON", () => {
  const study = stage(services.stages, 'study');
  const install = runs(study).find((r) => /pip install/.test(r));
  assert.ok(install && /-c \/tmp\/requirements\.lock/.test(install) && /\boptuna\b/.test(install) && /\bredis\b/.test(install), install);
  assert.ok(!/\btorch\b/.test(install!), 'no torch in the dispatcher');
  const dispatcher = stage(services.stages, 'dispatcher');
  assert.ok(keyword(dispatcher, 'COPY').some((c) => hasFlag(c, 'from', 'study')));
  const env = keyword(dispatcher, 'ENV').map((i) => i.getArgumentsContent() ?? '').join(' ');
  assert.match(env, /MAKAM_STUDY_PYTHON=\/opt\/study\/bin\/python/);
  assert.match(env, /PYTHONPATH=\/opt\/study\/src/);
  assert.ok(existsSync(rel('workers-python/src/makam_study/__main__.py')));
});

test('every image runs as a non-root user, by number (so Kubernetes runAsNonRoot can check it)', () => {
  for (const [stages, target] of [[services.stages, 'api'], [services.stages, 'dispatcher'], [worker.stages, 'runtime']] as const) {
    const user = userOf(stages, target);
    assert.ok(user, `${target} sets USER`);
    const [uid] = user.split(':');
    assert.match(uid!, /^\d+$/, `${target}: numeric USER`);
    assert.notEqual(Number(uid), 0, `${target}: not root`);
  }
  // the last stage of each file is an image someone runs
  for (const { stages } of [services, worker]) assert.ok(userOf(stages, stages.at(-1)!.name!));
});

test('health checks: the API asks /readyz, the worker runs the gRPC health module, the dispatcher has none', () => {
  const hc = (stages: Stage[], name: string) => effective(stages, name, 'HEALTHCHECK')!;
  const api = hc(services.stages, 'api');
  assert.ok(hasFlag(api, 'start-period'));
  assert.match(jsonCommand(api).join(' '), /\/readyz/);
  assert.deepEqual(jsonCommand(hc(worker.stages, 'runtime')).slice(0, 3), ['python', '-m', 'makam_worker.healthcheck']);
  assert.ok(existsSync(rel('workers-python/src/makam_worker/healthcheck.py')));
  assert.equal(hc(services.stages, 'dispatcher').getArgumentsContent()?.trim(), 'NONE');
});

test('worker image: a CUDA runtime base by default, a CPU variant by build args, torch picked for the variant', () => {
  const text = read(WORKER);
  assert.match(text, /^ARG BASE_IMAGE=nvidia\/cuda:[^\s]*-runtime-ubuntu[^\s]*$/m);
  assert.equal(stage(worker.stages, 'base').from, '${BASE_IMAGE}');
  assert.match(text, /^ARG TORCH_VARIANT=cu\d+$/m);
  assert.match(text, /^# +CPU.*\n.*--build-arg BASE_IMAGE=ubuntu:[\d.]+ --build-arg TORCH_VARIANT=cpu/m, 'the CPU build is documented in the file');
});

test('worker image: installs the pinned requirements (workers-python/requirements.lock), then the worker', () => {
  const build = stage(worker.stages, 'build');
  const copies = keyword(build, 'COPY').map((c) => c.getArguments().map((a) => a.getValue()));
  assert.ok(copies.some((args) => args.includes('workers-python/requirements.lock')));
  const all = runs(build).join('\n');
  assert.match(all, /worker-requirements\.sh requirements\.lock "\$\{TORCH_VARIANT\}" > requirements\.txt/);
  assert.match(all, /pip install --extra-index-url "\$\{TORCH_INDEX_URL\}" -r requirements\.txt/);
  assert.match(all, /pip install --no-deps \.\/workers-python/);
});

test('worker-requirements.sh keeps every pin and moves torch to the requested build', () => {
  const lock = read('workers-python/requirements.lock').split('\n');
  for (const variant of ['cpu', 'cu128']) {
    const r = spawnSync('sh', [rel('docker/worker-requirements.sh'), rel('workers-python/requirements.lock'), variant], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout.split('\n');
    assert.equal(out.length, lock.length);
    out.forEach((line, i) => {
      if (lock[i]!.startsWith('torch==')) assert.match(line, new RegExp(`^torch==[\\d.]+\\+${variant}$`));
      else assert.equal(line, lock[i]);
    });
  }
  const bad = spawnSync('sh', [rel('docker/worker-requirements.sh'), rel('workers-python/requirements.lock'), 'rocm; rm -rf /'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
});

test('worker image: the Hugging Face cache is a volume at HF_HOME, HF_HUB_OFFLINE a build arg and env', () => {
  const runtime = stage(worker.stages, 'runtime');
  const env = keyword(runtime, 'ENV').map((e) => e.getArgumentsContent()).join(' ');
  const hfHome = /HF_HOME=(\S+)/.exec(env)?.[1];
  assert.ok(hfHome);
  const volumes = keyword(runtime, 'VOLUME').flatMap((v) => jsonCommand(v));
  assert.ok(volumes.includes(hfHome), `VOLUME ${hfHome}`);
  assert.ok(volumes.includes('/var/lib/makam-worker'));
  assert.match(env, /HF_HUB_OFFLINE=\$\{HF_HUB_OFFLINE\}/);
  assert.ok(keyword(runtime, 'ARG').some((a) => a.getArgumentsContent() === 'HF_HUB_OFFLINE=1'));
  assert.match(env, /MAKAM_WORKER_LISTEN=0\.0\.0\.0:50051/);
  assert.deepEqual(jsonCommand(effective(worker.stages, 'runtime', 'CMD')!), ['makam-worker']);
  assert.match(read('workers-python/pyproject.toml'), /makam-worker = "makam_worker\.server:main"/);
});

test('every COPY source exists and is in the build context that .dockerignore leaves', () => {
  const ignored = dockerignore(read('.dockerignore'));
  for (const { stages } of [services, worker]) {
    for (const s of stages) {
      for (const copy of keyword(s, 'COPY').concat(keyword(s, 'ADD'))) {
        if (hasFlag(copy, 'from')) continue;
        const args = copy.getArguments().map((a) => a.getValue());
        for (const source of args.slice(0, -1)) {
          assert.ok(existsSync(rel(source)), `${source} exists`);
          assert.equal(ignored(source), false, `${source} is in the context`);
          if (statSync(rel(source)).isDirectory()) {
            const files = trackedFiles(source);
            for (const f of files) assert.equal(ignored(f), false, `${f} is in the context`);
          }
        }
      }
    }
  }
  // and what must stay out does
  for (const f of ['node_modules/fastify/package.json', 'services/cli/node_modules/x', 'workers-python/.venv/bin/python', 'var/store/x', '.git/HEAD', 'test/unit/job-state.test.ts', 'workers-python/src/makam_worker/__pycache__/x.pyc']) {
    assert.equal(ignored(f), true, `${f} is left out`);
  }
});

test('the stages each target builds on exist', () => {
  for (const { stages } of [services, worker]) {
    for (const s of stages) {
      const chain = stageChain(stages, s.name!);
      const root = chain.at(-1)!;
      assert.match(root.from, /^(\$\{[A-Z_]+\}|[a-z0-9./_-]+:[\w.-]+)$/, `${s.name} starts from an image or a build arg, never an untagged one`);
    }
  }
});

// (test/deploy/grpc-tls.test.ts runs it against a real worker)
test('await-workers gives up on a worker that never answers, within its deadline', async () => {
  const started = Date.now();
  await assert.rejects(awaitWorkers(['127.0.0.1:9'], { timeoutMs: 600, intervalMs: 100, callTimeoutMs: 300 }), /127\.0\.0\.1:9/);
  assert.ok(Date.now() - started < 3000);
});
