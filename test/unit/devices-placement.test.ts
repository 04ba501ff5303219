// Resource classes that offer several devices per worker, and jobs that ask for them (issue 14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlacementError, parseResourceClasses, place } from '../../services/api/src/placement/resource-classes.ts';
import { defaultsFor } from '../../services/api/src/placement/hyperparameters.ts';

const GiB = 1024 ** 3;
const bert = { family: 'encoder' as const, model: { name: 'bert-base-uncased' }, hyperparameters: { ...defaultsFor('encoder') }, labels: 4, rows: 3000, datasetBytes: 5e6 };

test('a class may offer N devices per worker (name=device:memory:N); the default is 1', () => {
  assert.deepEqual(parseResourceClasses('cpu,a100x8=cuda:80GiB:8,cpu2=cpu:16GiB:2'), [
    { name: 'cpu', device: 'cpu', memory_bytes: 16 * GiB, devices: 1 },
    { name: 'a100x8', device: 'cuda', memory_bytes: 80 * GiB, devices: 8 },
    { name: 'cpu2', device: 'cpu', memory_bytes: 16 * GiB, devices: 2 },
  ]);
  for (const bad of ['x=cuda:80GiB:0', 'x=cuda:80GiB:', 'x=cuda:80GiB:two']) assert.throws(() => parseResourceClasses(bad), /name=cuda:80GiB:8/, bad);
});

test('a job asking for devices goes only to a class offering that many, its estimate per device', () => {
  const classes = parseResourceClasses('gpu-32g,a100x8=cuda:80GiB:8');
  assert.equal(place(bert, classes).resource_class, 'gpu-32g');
  const eight = place(bert, classes, undefined, 8);
  assert.equal(eight.resource_class, 'a100x8');
  // DDP replicates the model: the same per-device figure whatever the device count.
  assert.equal(eight.estimate.total_bytes, place(bert, classes).estimate.total_bytes);
});

test('asking more devices than any class, or the asked class, offers is refused naming devices', () => {
  const classes = parseResourceClasses('cpu,cpu2=cpu:16GiB:2');
  assert.throws(() => place(bert, classes, undefined, 4), (e: unknown) =>
    e instanceof PlacementError && e.param === 'devices' && /asks for 4 devices and no resource class offers that many: cpu \(1\), cpu2 \(2\); lower devices/.test(e.message));
  assert.throws(() => place(bert, classes, 'cpu', 2), (e: unknown) =>
    e instanceof PlacementError && e.param === 'devices' && /resource_class cpu offers 1; lower devices, or use cpu2 \(2\)/.test(e.message));
  assert.equal(place(bert, classes, 'cpu2', 2).resource_class, 'cpu2');
});
