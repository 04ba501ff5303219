// One OpenTelemetry trace per job, through the real processes (API, dispatcher, Python worker over
// gRPC, Redis) exporting OTLP/HTTP JSON to a receiver in this test: the request span is the root,
// the enqueue its child, the dispatcher's processing the enqueue's, and every gRPC call and each
// run phase of the worker the processing's, all within their parents' times (but the processing,
// which starts after the enqueue and outlives the request, as a queue's consumer does). Without an endpoint,
// nothing is exported and the tracer is the no-op one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { injectTrace, startTracing, tracer, tracingStarted, withSpan } from '@makam/shared/tracing';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

interface OtlpSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
}

// OTLP's SpanKind numbers.
const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;
// Every process runs on this machine's clock; the worker's phases are stamped by Python's.
const SKEW_NS = 50_000_000n;

/** An OTLP/HTTP receiver: decodes the JSON export requests the exporter posts to /v1/traces. */
async function otlpReceiver(): Promise<{ url: string; spans: OtlpSpan[]; requests: () => number; close: () => Promise<void> }> {
  const spans: OtlpSpan[] = [];
  let requests = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      assert.equal(req.url, '/v1/traces');
      assert.match(String(req.headers['content-type']), /application\/json/);
      const message = JSON.parse(body.toString());
      for (const rs of message.resourceSpans ?? []) {
        const service = rs.resource.attributes.find((a: { key: string }) => a.key === 'service.name')?.value.stringValue;
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            const attributes: Record<string, unknown> = {};
            for (const a of s.attributes ?? []) attributes[a.key] = Object.values(a.value)[0];
            spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, kind: s.kind, start: BigInt(s.startTimeUnixNano), end: BigInt(s.endTimeUnixNano), attributes, status: s.status ?? {} });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

let redis: TestRedis;
let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
let stack: Stack | undefined;

before(async () => {
  redis = await startRedis();
  receiver = await otlpReceiver();
});
after(async () => {
  await stack?.stop();
  await receiver?.close();
  await redis?.stop();
});

// First, while this process has no endpoint in its environment.
test('without an OTLP endpoint nothing is set up: no-op tracer, no job trace context, nothing sent', async () => {
  const env = { ...process.env };
  delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const tracing = await startTracing('makam-test', env);
  assert.equal(tracing.enabled, false);
  assert.equal(tracingStarted(), false);
  await withSpan('enqueue train-cpu', {}, async (span) => {
    assert.equal(span, undefined);
    assert.equal(injectTrace(), undefined, 'no trace field goes into the job data');
  });
  const span = tracer.startSpan('anything');
  assert.equal(span.isRecording(), false, 'the API no-op tracer');
  assert.equal(span.spanContext().traceId, '00000000000000000000000000000000');
  span.end();
  await tracing.shutdown();
  assert.equal(receiver.requests(), 0);
});

test('a job is one trace: request, enqueue, processing, each gRPC call and the worker phases, parents right', { timeout: 300_000 }, async () => {
  // The stack's processes inherit this environment: all three export to the receiver.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
  process.env.OTEL_BSP_SCHEDULE_DELAY = '200';
  try {
    stack = await startStack(redis.url);
  } finally {
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete process.env.OTEL_BSP_SCHEDULE_DELAY;
  }
  const s = stack;
  await s.withLogs(async () => {
    const upload = await s.uploadSample();
    assert.equal(upload.status, 201, JSON.stringify(upload.body));
    const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
    request.dataset = upload.body.id;
    request.hyperparameters = { ...request.hyperparameters, epochs: 2, test_fraction: 0.2 };
    const submitted = await s.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    const job = await s.finished(id, 240_000);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));

    // The processing span ends once the job's record says succeeded; the exporter sends it within a batch delay.
    const processing = await eventually('the processing span', async () => receiver.spans.find((x) => x.name === 'process train-cpu' && x.attributes['makam.job.id'] === id), 30_000);
    const root = receiver.spans.find((x) => x.name === 'POST /v1/jobs' && x.traceId === processing.traceId);
    assert.ok(root, `no request span in the job's trace; spans: ${receiver.spans.map((x) => x.name).join(', ')}`);
    const spans = receiver.spans.filter((x) => x.traceId === root.traceId);
    const byId = new Map(spans.map((x) => [x.spanId, x]));
    const named = (name: string) => spans.filter((x) => x.name === name);
    const one = (name: string) => {
      const found = named(name);
      assert.equal(found.length, 1, `${name}: ${found.length} spans`);
      return found[0]!;
    };

    // One trace: every span that names the job is in it, and every span in it reaches the root.
    for (const x of receiver.spans.filter((x) => x.attributes['makam.job.id'] === id)) assert.equal(x.traceId, root.traceId, x.name);
    assert.equal(root.parentSpanId, '', 'the request span is the root');
    assert.equal(root.service, 'makam-api');
    assert.equal(root.kind, KIND.SERVER);
    assert.equal(root.attributes['http.response.status_code'], 202);
    for (const x of spans) {
      let at = x;
      for (let hops = 0; at.parentSpanId; hops++) {
        assert.ok(hops < 10);
        at = byId.get(at.parentSpanId)!;
        assert.ok(at, `${x.name}: its parent is not in the trace`);
      }
      assert.equal(at, root, `${x.name} does not reach the request span`);
    }

    const enqueue = one('enqueue train-cpu');
    assert.equal(enqueue.parentSpanId, root.spanId);
    assert.equal(enqueue.kind, KIND.PRODUCER);
    assert.equal(processing.parentSpanId, enqueue.spanId, 'the job data carried the enqueue context');
    assert.equal(processing.kind, KIND.CONSUMER);
    assert.equal(processing.service, 'makam-dispatcher');

    const rpc = (method: string) => `makam.worker.v1.WorkerService/${method}`;
    for (const method of ['GetCapabilities', 'UploadDataset', 'StartRun', 'WatchRun', 'FetchArtifact', 'DeleteRun']) {
      const calls = named(rpc(method));
      assert.ok(calls.length >= 1, `no ${method} span`);
      for (const c of calls) {
        assert.equal(c.parentSpanId, processing.spanId, method);
        assert.equal(c.kind, KIND.CLIENT);
        assert.equal(c.attributes['rpc.grpc.status_code'], 0, method);
      }
    }
    assert.equal(named(rpc('GetRun')).length, 0, 'the watchdog probes stay out of the trace');

    // The worker's phases, with the worker's own times, as children of the processing.
    const phases = spans.filter((x) => x.parentSpanId === processing.spanId && !x.name.startsWith('makam.worker.v1.'));
    assert.deepEqual(phases.map((x) => x.name).sort(), ['data preparation', 'epoch', 'epoch', 'evaluation', 'evaluation', 'evaluation', 'model and tokenizer', 'packing', 'tokenizer'].sort());
    assert.deepEqual(named('epoch').map((x) => x.attributes['makam.epoch']).sort(), [1, 2]);
    assert.deepEqual(named('evaluation').map((x) => x.attributes['makam.split']).sort(), ['test', 'validation', 'validation']);
    for (const x of phases) assert.equal(x.attributes['makam.job.id'], id);
    // In the order the worker ran them, after StartRun began and before the artifact was fetched.
    const ordered = [...phases].sort((a, b) => Number(a.start - b.start));
    assert.deepEqual(ordered.map((x) => x.name), ['data preparation', 'model and tokenizer', 'tokenizer', 'epoch', 'evaluation', 'epoch', 'evaluation', 'evaluation', 'packing']);
    assert.ok(ordered[0]!.start >= one(rpc('StartRun')).start - SKEW_NS);
    assert.ok(ordered.at(-1)!.end <= named(rpc('FetchArtifact'))[0]!.start + SKEW_NS);

    for (const x of spans) {
      assert.ok(x.start <= x.end, `${x.name}: starts after it ends`);
      assert.notEqual(x.status.code, 2, `${x.name}: ${x.status.message}`);
      if (!x.parentSpanId) continue;
      const parent = byId.get(x.parentSpanId)!;
      assert.ok(x.start >= parent.start - SKEW_NS, `${x.name} starts before ${parent.name}`);
      // The queue is the one asynchronous hop: the processing outlives the request that enqueued it.
      if (x !== processing) assert.ok(x.end <= parent.end + SKEW_NS, `${x.name} is not within ${parent.name}`);
    }

    // The phases are the trace's, not the job's public events.
    const events = await s.json(`/v1/jobs/${id}/events?limit=500`);
    assert.equal(events.status, 200);
    assert.ok(events.body.data.length > 0);
    assert.deepEqual(events.body.data.filter((e: { type: string }) => e.type === 'span'), []);
  });
});

test('a tune job is one trace too: its coordination, each trial\'s enqueue and processing, the trials\' phases', { timeout: 300_000 }, async () => {
  assert.ok(stack, 'the stack of the test before');
  const s = stack;
  await s.withLogs(async () => {
    const upload = await s.uploadSample();
    const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/tune-tiny-bert.json'), 'utf8'));
    request.dataset = upload.body.id;
    request.model = { family: 'tfidf' };
    request.hyperparameters = { seed: 42 };
    request.search = { space: { C: { type: 'categorical', choices: [0.1, 1] } }, objective: { metric: 'macro_f1' }, sampler: 'grid', pruner: 'none', trials: 2, parallelism: 2 };
    // This time the client is traced too: its traceparent makes the request span its child.
    const [clientTrace, clientSpan] = ['4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'];
    const headers = { 'content-type': 'application/json', traceparent: `00-${clientTrace}-${clientSpan}-01` };
    const submitted = await s.json('/v1/jobs', { method: 'POST', headers, body: JSON.stringify(request) });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    const job = await s.finished(id, 240_000);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const trials: string[] = (await s.json(`/v1/jobs/${id}/trials`)).body.data.map((t: { job_id: string }) => t.job_id);
    assert.equal(trials.length, 2);

    const coordination = await eventually('the tune job\'s processing span', async () => receiver.spans.find((x) => x.name === 'process tune-cpu' && x.attributes['makam.job.id'] === id), 30_000);
    const spans = receiver.spans.filter((x) => x.traceId === coordination.traceId);
    const byId = new Map(spans.map((x) => [x.spanId, x]));
    const parentOf = (x: OtlpSpan) => byId.get(x.parentSpanId);
    const enqueueTune = parentOf(coordination)!;
    assert.equal(enqueueTune.name, 'enqueue tune-cpu');
    const post = parentOf(enqueueTune)!;
    assert.equal(post.name, 'POST /v1/jobs');
    assert.equal(post.traceId, clientTrace, 'the trace is the client\'s');
    assert.equal(post.parentSpanId, clientSpan, 'the request span is a child of the client\'s span');
    for (const trial of trials) {
      const processing = await eventually(`trial ${trial}'s processing span`, async () => receiver.spans.find((x) => x.name === 'process train-cpu' && x.attributes['makam.job.id'] === trial), 30_000);
      assert.equal(processing.traceId, coordination.traceId, `trial ${trial} is in its tune job's trace`);
      const enqueue = byId.get(processing.parentSpanId)!;
      assert.equal(enqueue.name, 'enqueue train-cpu');
      assert.equal(enqueue.attributes['makam.job.id'], trial);
      assert.equal(enqueue.parentSpanId, coordination.spanId, 'the coordinator enqueued it');
      const children = receiver.spans.filter((x) => x.parentSpanId === processing.spanId).map((x) => x.name);
      for (const name of ['makam.worker.v1.WorkerService/StartRun', 'data preparation', 'epoch', 'evaluation', 'packing']) assert.ok(children.includes(name), `trial ${trial}: no ${name} span`);
    }
  });
});
