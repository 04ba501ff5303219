// The OpenAPI document: valid OpenAPI 3.1 (checked by an independent validator), generated from
// the route schemas, with every registered route in it except a short, named list of operator
// and static routes; and its docs page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;

before(async () => {
  ops = await startOpsApp();
});
after(async () => {
  await ops?.close();
});

/** Routes left out of the document on purpose. */
const UNDOCUMENTED = [
  /^\/$/,
  /^\/metrics$/,
  /^\/openapi\.json$/,
  /^\/docs(\/|$)/,
  /^\/admin\/queues(\/|$)/,
  /^\/dashboard(\/|$)/,
];

const toOpenApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

test('/openapi.json is a valid OpenAPI 3.1 document with every route, its schemas and the event stream', async () => {
  const res = await fetch(`${ops.url}/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, any>>; components: any };
  assert.equal(doc.openapi, '3.1.0');

  const validator = new Validator();
  const result = await validator.validate(doc as never);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2)?.slice(0, 3000));
  assert.equal(validator.version, '3.1');

  const missing: string[] = [];
  for (const route of ops.app.registeredRoutes) {
    if (route.method === 'HEAD') continue;
    if (UNDOCUMENTED.some((re) => re.test(route.url))) continue;
    // The event stream is its own route, documented on the JSON route's operation.
    if (route.hidden && route.url === '/v1/jobs/:id/events') continue;
    assert.equal(route.hidden, false, `${route.method} ${route.url} is hidden from the document`);
    // A prefix's '/' route answers with and without the trailing slash; one of them is documented.
    const path = toOpenApiPath(route.url);
    const documented = [path, path.replace(/(.)\/$/, '$1'), `${path}/`].some((p) => doc.paths[p]?.[route.method.toLowerCase()]);
    if (!documented) missing.push(`${route.method} ${route.url}`);
  }
  assert.deepEqual(missing, []);
  for (const p of ['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/events', '/v1/datasets', '/v1/webhooks', '/v1/webhooks/{id}/deliveries', '/v1/workers', '/v1/jobs/{id}/artifacts/model/files/{name}', '/v1/jobs/{id}/trials']) {
    assert.ok(doc.paths[p], `${p} documented`);
  }
  // Generated from the validation schemas: the submit body is one of its kinds (oneOf by `kind`),
  // each naming its fields and refusing others.
  const submit = doc.paths['/v1/jobs']!.post;
  const body = submit.requestBody.content['application/json'].schema;
  assert.deepEqual(body.discriminator, { propertyName: 'kind' });
  const kinds = body.oneOf as Array<{ required: string[]; additionalProperties: boolean }>;
  assert.deepEqual(kinds.map((k) => [...k.required].sort()), [['dataset', 'kind', 'model'], ['kind', 'members']]);
  for (const k of kinds) assert.equal(k.additionalProperties, false);
  assert.deepEqual(submit.security, [{ apiKey: [] }]);
  const events = doc.paths['/v1/jobs/{id}/events']!.get;
  assert.ok(events.responses['200'].content['text/event-stream'], 'the event stream is documented');
  assert.ok(events.parameters.some((p: { name: string; in: string }) => p.name === 'Last-Event-ID' && p.in === 'header'));
  assert.equal(doc.components.securitySchemes.apiKey.scheme, 'bearer');
});

test('the docs page serves Swagger UI', async () => {
  const res = await fetch(`${ops.url}/docs/`, { redirect: 'follow' });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /swagger-ui/i);
});
