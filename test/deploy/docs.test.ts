// docs/deploy.md: linked from the README, and its sizing table kept true: each row is recomputed
// with the estimate the API places jobs by, so a change to the estimator shows here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimateMemory } from '../../services/api/src/placement/memory-estimate.ts';
import { parseResourceClasses, place } from '../../services/api/src/placement/resource-classes.ts';
import { execFileSync } from 'node:child_process';
import { ROOT, read } from './helpers.ts';

const DOCS = read('docs/deploy.md');

test('the README links docs/deploy.md from "A worker on a GPU host"', () => {
  const readme = read('README.md');
  const section = readme.slice(readme.indexOf('## A worker on a GPU host'));
  assert.match(section.slice(0, section.indexOf('\n## ', 5)), /\]\(docs\/deploy\.md\)/);
});

test('docs/deploy.md covers compose, the overlays, pre-loading weights and sizing', () => {
  for (const heading of ['## One GPU box: Docker Compose', '## Pre-loading model weights', '## A cluster: Kustomize overlays', '## Sizing: which model on which pool']) {
    assert.ok(DOCS.includes(heading), heading);
  }
  for (const word of ['COMPOSE_PROFILES', 'MAKAM_AWAIT_WORKERS_S', 'makam-q:train-<class>:wait', '/etc/makam/tls', 'MAKAM_GRPC_TLS_SERVER_NAME', 'docker/compose.mtls.yml', 'hf download', 'HF_HUB_OFFLINE']) {
    assert.ok(DOCS.includes(word), word);
  }
  for (const dir of ['gpu-4g', 'gpu-32g', 'all-pools']) assert.ok(DOCS.includes(`deploy/overlays/${dir}`), dir);
});

test('every setting docs/deploy.md names is one the code, the images or the manifests read', () => {
  const sources = execFileSync('git', ['ls-files', 'services', 'workers-python/src', 'docker', 'docker-compose.yml', 'deploy', 'scripts'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => /\.(ts|py|ya?ml|sh|example|Dockerfile)$|Dockerfile/.test(f) && !f.includes('/gen/'))
    .map((f) => read(f))
    .join('\n');
  const named = new Set(DOCS.match(/\b(?:MAKAM|REDIS|HF)_[A-Z0-9_]*[A-Z0-9]\b/g));
  assert.ok(named.has('REDIS_SENTINELS'));
  for (const name of named) assert.ok(sources.includes(name), `docs/deploy.md names ${name}, which nothing reads`);
});

const BERTURK = { family: 'encoder', model: { name: 'dbmdz/bert-base-turkish-cased' } } as const;
const MBERT = { family: 'encoder', model: { name: 'bert-base-multilingual-cased' } } as const;
const LLAMA = { family: 'decoder', model: { name: 'meta-llama/Llama-3.1-8B' } } as const;
const LORA = { lora_r: 16, precision: 'bf16' };

// [the row's first cells as in the table, the job]
const ROWS: [string, { family: 'encoder' | 'decoder'; model: { name: string } }, Record<string, unknown>][] = [
  ['| BERTurk (`dbmdz/bert-base-turkish-cased`, 111M) | full fine-tuning, fp32 weights, bf16 autocast | batch 16, 256 tokens |', BERTURK, { batch_size: 16, max_length: 256 }],
  ['| BERTurk | the same, gradient checkpointing | batch 16, 512 tokens |', BERTURK, { batch_size: 16, max_length: 512, gradient_checkpointing: true }],
  ['| mBERT (`bert-base-multilingual-cased`, 178M) | full fine-tuning, bf16 autocast | batch 8, 128 tokens |', MBERT, { batch_size: 8, max_length: 128 }],
  ['| mBERT | the same, gradient checkpointing | batch 16, 512 tokens |', MBERT, { batch_size: 16, max_length: 512, gradient_checkpointing: true }],
  ['| mBERT | the same, no checkpointing | batch 16, 256 tokens |', MBERT, { batch_size: 16, max_length: 256 }],
  ['| LLaMA-3.1-8B (`meta-llama/Llama-3.1-8B`, 7.5B) | LoRA r=16 on q,k,v,o, bf16 weights, gradient checkpointing | batch 4, 512 tokens |', LLAMA, { ...LORA, batch_size: 4, max_length: 512, gradient_checkpointing: true }],
  ['| LLaMA-3.1-8B | LoRA r=16, bf16, no checkpointing | batch 4, 512 tokens |', LLAMA, { ...LORA, batch_size: 4, max_length: 512 }],
  ['| LLaMA-3.1-8B | QLoRA (4-bit weights), LoRA r=16, gradient checkpointing | batch 8, 512 tokens |', LLAMA, { ...LORA, batch_size: 8, max_length: 512, gradient_checkpointing: true, load_in_4bit: true }],
];

test("the sizing table matches makam's memory estimate and placement", () => {
  const classes = parseResourceClasses('cpu,gpu-4g,gpu-32g');
  for (const [start, job, hyperparameters] of ROWS) {
    const line = DOCS.split('\n').find((l) => l.startsWith(start));
    assert.ok(line, `docs/deploy.md has the row ${start}`);
    const input = { ...job, hyperparameters, labels: 6, rows: 10_000, datasetBytes: 10_000_000 };
    const gib = (estimateMemory({ ...input, cuda: true }).total_bytes / 1024 ** 3).toFixed(1);
    const pool = place(input, classes).resource_class;
    assert.ok(line.includes(`| ${gib} GiB |`), `${start}: the estimate is now ${gib} GiB; update docs/deploy.md`);
    assert.ok(line.includes(`| \`${pool}\``), `${start}: it is now placed on ${pool}; update docs/deploy.md`);
  }
});
