// deploy/: the base and each overlay rendered offline with `kubectl kustomize`, every object
// checked against the Kubernetes API types (kubernetes-models; KEDA's CRDs from
// @kubernetes-models/keda), then asserted: GPUs, node selection by GPU memory, tolerations,
// autoscaling on the class's BullMQ lists, network policies, PDBs, probes, requests, secrets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { QueueKeys } from 'bullmq';
import { queueName } from '@makam/shared/queues';
import {
  byKind,
  checkKubernetesTypes,
  container,
  envEntry,
  envValue,
  find,
  kustomize,
  parseYamlStream,
  podTemplate,
  read,
  rel,
  scratchDir,
  selects,
  workloads,
  type Obj,
} from './helpers.ts';

const OVERLAYS = readdirSync(rel('deploy/overlays')).sort();
const POOLS: Record<string, { minMiB: number; maxMiB: number; minReplicas: number }> = {
  // GPU feature discovery's nvidia.com/gpu.memory is the card's memory in MiB: the 4 GB pool takes
  // any card of 4 GB, the 32 GB pool a 32 GB V100 (32510 MiB reported) but no 24 GB card (24564).
  'gpu-4g': { minMiB: 3000, maxMiB: 4096, minReplicas: 1 },
  'gpu-32g': { minMiB: 24564, maxMiB: 32510, minReplicas: 0 },
};
const poolsIn = (overlay: string): string[] => (overlay === 'all-pools' ? Object.keys(POOLS) : Object.keys(POOLS).filter((p) => overlay === p));
const rendered = new Map<string, Obj[]>();
const render = (dir: string): Obj[] => {
  if (!rendered.has(dir)) rendered.set(dir, kustomize(rel(dir)));
  return rendered.get(dir)!;
};

test('there is an overlay per GPU pool and one with both', () => {
  assert.deepEqual(OVERLAYS, ['all-pools', 'gpu-32g', 'gpu-4g']);
});

for (const dir of ['deploy/base', ...OVERLAYS.map((o) => `deploy/overlays/${o}`)]) {
  describe(dir, () => {
    let manifests: Obj[];
    before(() => {
      manifests = render(dir);
    });

    test('renders, and every object is valid against the Kubernetes API types (unknown fields included)', async () => {
      assert.ok(manifests.length > 0);
      assert.deepEqual(await checkKubernetesTypes(manifests), []);
    });

    test('every object is in the makam namespace and labelled part-of makam', () => {
      for (const m of manifests) {
        if (m.kind !== 'Namespace') assert.equal(m.metadata.namespace, 'makam', `${m.kind}/${m.metadata.name}`);
        assert.equal(m.metadata.labels?.['app.kubernetes.io/part-of'], 'makam', `${m.kind}/${m.metadata.name}`);
      }
    });

    test('every container: resource requests, a memory limit, a tagged image, no privilege', () => {
      for (const w of workloads(manifests)) {
        const pod = podTemplate(w).spec;
        assert.equal(pod.securityContext?.runAsNonRoot, true, `${w.metadata.name}: runAsNonRoot`);
        assert.equal(pod.automountServiceAccountToken, false, `${w.metadata.name}: no API token`);
        for (const c of pod.containers) {
          const where = `${w.metadata.name}/${c.name}`;
          assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${where}: cpu and memory requests`);
          assert.ok(c.resources?.limits?.memory, `${where}: a memory limit`);
          assert.match(c.image, /^[a-z0-9./_-]+:[\w.-]+$/, `${where}: a tagged image`);
          assert.doesNotMatch(c.image, /:latest$/, where);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where}: no privilege escalation`);
          assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${where}: drops all capabilities`);
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root`);
        }
      }
    });

    test('references resolve: selectors, config maps, claims, TriggerAuthentications', () => {
      for (const w of workloads(manifests)) {
        assert.ok(selects(w.spec.selector, podTemplate(w).metadata.labels), `${w.metadata.name}: its selector selects its pods`);
        const pod = podTemplate(w).spec;
        for (const v of pod.volumes ?? []) {
          if (v.persistentVolumeClaim) find(manifests, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
        }
        for (const c of pod.containers) {
          for (const ef of c.envFrom ?? []) if (ef.configMapRef) find(manifests, 'ConfigMap', ef.configMapRef.name);
          const volumes = [...(pod.volumes ?? []), ...(w.spec.volumeClaimTemplates ?? []).map((t: Obj) => t.metadata)];
          for (const m of c.volumeMounts ?? []) assert.ok(volumes.some((v: Obj) => v.name === m.name), `${w.metadata.name}/${c.name}: volume ${m.name}`);
        }
      }
      for (const svc of byKind(manifests, 'Service')) {
        assert.ok(workloads(manifests).some((w) => selects({ matchLabels: svc.spec.selector }, podTemplate(w).metadata.labels)), `Service/${svc.metadata.name} selects pods`);
      }
      for (const so of byKind(manifests, 'ScaledObject')) {
        find(manifests, so.spec.scaleTargetRef.kind, so.spec.scaleTargetRef.name);
        for (const t of so.spec.triggers) find(manifests, 'TriggerAuthentication', t.authenticationRef.name);
      }
    });

    test('every Secret referenced is one docs/deploy.md tells how to create', () => {
      const docs = read('docs/deploy.md');
      const names = new Set<string>();
      for (const w of workloads(manifests)) {
        const pod = podTemplate(w).spec;
        for (const v of pod.volumes ?? []) if (v.secret) names.add(v.secret.secretName);
        for (const c of pod.containers) for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) names.add(e.valueFrom.secretKeyRef.name);
      }
      for (const ta of byKind(manifests, 'TriggerAuthentication')) for (const r of ta.spec.secretTargetRef) names.add(r.name);
      for (const name of names) assert.match(docs, new RegExp(`\\b${name}\\b`), `docs/deploy.md names the Secret ${name}`);
    });

    test('Redis: AOF, noeviction, a password from the Secret, its data on a volume, probed', () => {
      const redis = find(manifests, 'StatefulSet', 'redis');
      const c = container(redis, 'redis');
      const flag = (name: string) => c.args[c.args.indexOf(name) + 1];
      assert.equal(flag('--appendonly'), 'yes');
      assert.equal(flag('--maxmemory-policy'), 'noeviction');
      assert.equal(flag('--requirepass'), '$(REDIS_PASSWORD)');
      assert.deepEqual(envEntry(c, 'REDIS_PASSWORD').valueFrom.secretKeyRef, { name: 'makam-redis', key: 'password' });
      assert.equal(flag('--dir'), '/data');
      assert.ok(c.volumeMounts.some((m: Obj) => m.name === 'data' && m.mountPath === '/data'));
      assert.equal(redis.spec.volumeClaimTemplates[0].metadata.name, 'data');
      assert.deepEqual(c.readinessProbe.exec.command, ['redis-cli', 'ping']);
      assert.deepEqual(envEntry(c, 'REDISCLI_AUTH').valueFrom.secretKeyRef, { name: 'makam-redis', key: 'password' });
      assert.ok(c.livenessProbe);
    });

    test('the API: probes on /healthz and /readyz, Redis URL and admin key from Secrets, two replicas', () => {
      const api = find(manifests, 'Deployment', 'api');
      const c = container(api, 'api');
      const port = c.ports.find((p: Obj) => p.name === 'http');
      assert.equal(port.containerPort, 8080);
      assert.equal(envValue(c, 'MAKAM_API_PORT'), '8080');
      assert.equal(envValue(c, 'MAKAM_API_HOST'), '0.0.0.0');
      assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'http' });
      assert.deepEqual(c.startupProbe.httpGet, { path: '/healthz', port: 'http' });
      assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'http' });
      assert.deepEqual(envEntry(c, 'REDIS_URL').valueFrom.secretKeyRef, { name: 'makam-redis', key: 'url' });
      assert.deepEqual(envEntry(c, 'MAKAM_ADMIN_KEY').valueFrom.secretKeyRef, { name: 'makam-api', key: 'admin-key', optional: true });
      assert.ok(api.spec.replicas >= 2);
      assert.ok(c.volumeMounts.some((m: Obj) => m.name === 'store' && m.mountPath === find(manifests, 'ConfigMap', 'makam-config').data.MAKAM_STORE_DIR));
    });

    test('PodDisruptionBudgets cover the API, Redis and each GPU pool', () => {
      const pdbs = byKind(manifests, 'PodDisruptionBudget');
      const covered = (w: Obj) => pdbs.some((p) => selects(p.spec.selector, podTemplate(w).metadata.labels));
      assert.ok(covered(find(manifests, 'Deployment', 'api')));
      assert.ok(covered(find(manifests, 'StatefulSet', 'redis')));
      for (const pool of poolsIn(path.basename(dir))) assert.ok(covered(find(manifests, 'Deployment', `worker-${pool}`)), pool);
      for (const p of pdbs) assert.ok(workloads(manifests).some((w) => selects(p.spec.selector, podTemplate(w).metadata.labels)), `PDB ${p.metadata.name} selects pods`);
    });

    test('network policies: ingress denied by default; only the API and dispatchers reach Redis, only dispatchers the workers', () => {
      const policies = byKind(manifests, 'NetworkPolicy');
      const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0);
      assert.ok(deny, 'a default-deny policy');
      assert.deepEqual(deny.spec.policyTypes, ['Ingress']);
      assert.equal(deny.spec.ingress, undefined);
      const pods = workloads(manifests).map((w) => ({ name: w.metadata.name as string, labels: podTemplate(w).metadata.labels as Record<string, string> }));
      /** Which of makam's own pods may open `port` on pods with these labels, and whether anyone outside may. */
      const reach = (labels: Record<string, string>, port: number) => {
        const from = new Set<string>();
        let outside = false;
        for (const p of policies) {
          if (!selects(p.spec.podSelector, labels)) continue;
          for (const rule of p.spec.ingress ?? []) {
            if (rule.ports && !rule.ports.some((rp: Obj) => rp.port === port)) continue;
            if (!rule.from) {
              outside = true;
              for (const q of pods) from.add(q.name);
              continue;
            }
            for (const peer of rule.from) {
              if (peer.ipBlock || (peer.namespaceSelector && !peer.podSelector)) outside = true;
              else if (peer.namespaceSelector) outside = true; // another namespace's pods (KEDA's operator)
              else for (const q of pods) if (selects(peer.podSelector, q.labels)) from.add(q.name);
            }
          }
        }
        return { from: [...from].sort(), outside };
      };
      const labelsOf = (kind: string, name: string) => podTemplate(find(manifests, kind, name)).metadata.labels;
      const pools = poolsIn(path.basename(dir)).map((p) => `worker-${p}`).sort();
      assert.deepEqual(reach(labelsOf('StatefulSet', 'redis'), 6379).from, ['api', ...pools].sort());
      assert.equal(reach(labelsOf('StatefulSet', 'redis'), 6379).outside, true, "KEDA's operator reads the queue lengths");
      const kedaPeer = find(manifests, 'NetworkPolicy', 'redis-ingress').spec.ingress[0].from.find((f: Obj) => f.namespaceSelector);
      assert.deepEqual(kedaPeer.namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': 'keda' });
      assert.ok(kedaPeer.podSelector, 'only the KEDA operator, not the whole namespace');
      assert.equal(reach(labelsOf('StatefulSet', 'redis'), 6380).from.length, 0, 'no other port');
      for (const pool of pools) {
        const labels = labelsOf('Deployment', pool);
        const grpc = reach(labels, 50051);
        assert.deepEqual(grpc.from, pools, `${pool}: only pods that run a dispatcher`);
        assert.equal(grpc.outside, false);
        for (const p of grpc.from) assert.equal(labelsOf('Deployment', p)['makam/dispatcher'], 'true');
      }
      const api = reach(labelsOf('Deployment', 'api'), 8080);
      assert.equal(api.outside, true, 'the API is reachable (through the ingress controller)');
      assert.equal(reach(labelsOf('Deployment', 'api'), 9999).from.length, 0);
    });

    for (const pool of poolsIn(path.basename(dir))) {
      describe(`the ${pool} pool`, () => {
        let w: Obj;
        let pod: Obj;
        before(() => {
          w = find(manifests, 'Deployment', `worker-${pool}`);
          pod = podTemplate(w).spec;
        });

        test('one NVIDIA GPU per worker, requested and limited', () => {
          const worker = container(w, 'worker');
          assert.equal(worker.resources.limits['nvidia.com/gpu'], '1');
          assert.equal(worker.resources.requests['nvidia.com/gpu'], '1');
          assert.equal(container(w, 'dispatcher').resources.limits['nvidia.com/gpu'], undefined, 'the dispatcher takes no GPU');
          assert.equal(envValue(worker, 'MAKAM_WORKER_DEVICE'), 'cuda');
        });

        test('scheduled on GPU nodes by the memory label NVIDIA GPU feature discovery sets, tolerating GPU taints', () => {
          assert.equal(pod.nodeSelector['nvidia.com/gpu.present'], 'true');
          const terms = pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
          assert.equal(terms.length, 1);
          const memory = terms[0].matchExpressions.find((e: Obj) => e.key === 'nvidia.com/gpu.memory');
          assert.equal(memory.operator, 'Gt');
          const threshold = Number(memory.values[0]);
          assert.ok(threshold >= POOLS[pool]!.minMiB && threshold < POOLS[pool]!.maxMiB, `${pool}: threshold ${threshold} MiB`);
          assert.ok(pod.tolerations.some((t: Obj) => t.key === 'nvidia.com/gpu' && t.operator === 'Exists' && t.effect === 'NoSchedule'));
          assert.ok(pod.tolerations.some((t: Obj) => t.key === 'makam/pool' && t.value === pool));
        });

        test('the worker: gRPC port, health module in its probes, HF cache, state dir', () => {
          const worker = container(w, 'worker');
          assert.equal(envValue(worker, 'MAKAM_WORKER_LISTEN'), '0.0.0.0:50051');
          assert.equal(worker.ports.find((p: Obj) => p.name === 'grpc').containerPort, 50051);
          for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
            assert.deepEqual(worker[probe].exec.command.slice(0, 3), ['python', '-m', 'makam_worker.healthcheck'], probe);
            const timeout = Number(worker[probe].exec.command[worker[probe].exec.command.indexOf('--timeout') + 1]);
            assert.ok(timeout < worker[probe].timeoutSeconds, `${probe}: the call's deadline ends before the probe's`);
          }
          assert.equal(envValue(worker, 'HF_HOME'), '/var/cache/huggingface');
          assert.equal(envValue(worker, 'HF_HUB_OFFLINE'), '1');
          const mount = (c: Obj, name: string) => c.volumeMounts.find((m: Obj) => m.name === name);
          assert.equal(mount(worker, 'hf-cache').mountPath, '/var/cache/huggingface');
          assert.equal(mount(worker, 'state').mountPath, envValue(worker, 'MAKAM_WORKER_STATE_DIR'));
          const volume = (name: string) => pod.volumes.find((v: Obj) => v.name === name);
          assert.equal(volume('hf-cache').persistentVolumeClaim.claimName, 'makam-hf-cache');
        });

        test('the worker\'s upload limits fit its state volume (the free-disk check sees the node, not the sizeLimit)', () => {
          const worker = container(w, 'worker');
          const gib = (v: string) => Number(/^(\d+)Gi$/.exec(v)![1]) * 1024 ** 3;
          const state = gib(pod.volumes.find((v: Obj) => v.name === 'state').emptyDir.sizeLimit);
          // the worker's defaults (workers-python/src/makam_worker/settings.py) where the pod sets none
          const checkpoint = Number(envValue(worker, 'MAKAM_WORKER_MAX_CHECKPOINT_BYTES') ?? 32 * 1024 ** 3);
          const datasets = Number(envValue(worker, 'MAKAM_WORKER_DATASET_CACHE_BYTES') ?? 4 * 1024 ** 3);
          assert.ok(checkpoint + datasets < state, `${pool}: a ${checkpoint}-byte checkpoint and ${datasets} bytes of datasets exceed the ${state}-byte state volume`);
        });

        test('mutual TLS on the gRPC channel: each side\'s Secret mounted at /etc/makam/tls and named in its settings', () => {
          const worker = container(w, 'worker');
          const dispatcher = container(w, 'dispatcher');
          const mount = (c: Obj, name: string) => c.volumeMounts.find((m: Obj) => m.name === name);
          const volume = (name: string) => pod.volumes.find((v: Obj) => v.name === name);
          for (const [c, name, secret] of [[worker, 'grpc-tls', 'makam-grpc-worker-tls'], [dispatcher, 'grpc-client-tls', 'makam-grpc-dispatcher-tls']] as const) {
            assert.equal(mount(c, name).mountPath, '/etc/makam/tls');
            assert.equal(mount(c, name).readOnly, true);
            assert.equal(volume(name).secret.secretName, secret);
            assert.notEqual(volume(name).secret.optional, true, `${secret} is required: no plaintext by accident`);
            // files of a kubernetes.io/tls Secret with its CA (as cert-manager writes them)
            for (const e of c.env.filter((x: Obj) => /_TLS_(CERT|KEY|CA|CLIENT_CA)$/.test(x.name))) {
              assert.match(e.value, /^\/etc\/makam\/tls\/(ca\.crt|tls\.crt|tls\.key)$/, `${c.name}: ${e.name}`);
            }
          }
          assert.equal(envValue(worker, 'MAKAM_WORKER_TLS_CERT'), '/etc/makam/tls/tls.crt');
          assert.equal(envValue(worker, 'MAKAM_WORKER_TLS_KEY'), '/etc/makam/tls/tls.key');
          assert.equal(envValue(worker, 'MAKAM_WORKER_TLS_CLIENT_CA'), '/etc/makam/tls/ca.crt', 'clients must present a certificate');
          assert.equal(envValue(worker, 'MAKAM_WORKER_ALLOW_INSECURE'), undefined, 'no way around client authentication');
          // the worker's exec probes are clients of the worker: they present the worker's own pair
          assert.equal(envValue(worker, 'MAKAM_GRPC_TLS_CA'), '/etc/makam/tls/ca.crt');
          assert.equal(envValue(worker, 'MAKAM_GRPC_TLS_CERT'), '/etc/makam/tls/tls.crt');
          assert.equal(envValue(dispatcher, 'MAKAM_GRPC_TLS_CA'), '/etc/makam/tls/ca.crt');
          assert.equal(envValue(dispatcher, 'MAKAM_GRPC_TLS_CERT'), '/etc/makam/tls/tls.crt');
          assert.equal(envValue(dispatcher, 'MAKAM_GRPC_TLS_KEY'), '/etc/makam/tls/tls.key');
          // the dispatcher dials its pod's IP, which no certificate names: it checks the name makam-worker
          assert.equal(envValue(dispatcher, 'MAKAM_GRPC_TLS_SERVER_NAME'), 'makam-worker');
        });

        test('its dispatcher serves the class and drives the worker beside it, once that answers', () => {
          const d = container(w, 'dispatcher');
          assert.equal(envValue(d, 'MAKAM_CLASS'), pool);
          assert.equal(w.metadata.labels['makam/class'], pool);
          const podIp = d.env.findIndex((e: Obj) => e.name === 'POD_IP');
          const workersAt = d.env.findIndex((e: Obj) => e.name === 'MAKAM_WORKERS');
          assert.equal(d.env[podIp].valueFrom.fieldRef.fieldPath, 'status.podIP');
          assert.ok(podIp < workersAt, 'POD_IP is defined before MAKAM_WORKERS uses it');
          assert.equal(envValue(d, 'MAKAM_WORKERS'), '$(POD_IP):50051');
          assert.ok(Number(envValue(d, 'MAKAM_AWAIT_WORKERS_S')) > 0);
          assert.deepEqual(envEntry(d, 'REDIS_URL').valueFrom.secretKeyRef, { name: 'makam-redis', key: 'url' });
          assert.deepEqual(d.envFrom, [{ configMapRef: { name: 'makam-config' } }]);
          assert.equal(podTemplate(w).metadata.labels['makam/dispatcher'], 'true');
          assert.ok(d.volumeMounts.some((m: Obj) => m.name === 'store' && m.mountPath === find(manifests, 'ConfigMap', 'makam-config').data.MAKAM_STORE_DIR));
        });

        test("KEDA scales it on the class's BullMQ wait and active lists", () => {
          const so = find(manifests, 'ScaledObject', `worker-${pool}`);
          assert.deepEqual(so.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: `worker-${pool}` });
          assert.equal(w.spec.replicas, undefined, 'the ScaledObject owns the replica count');
          // the keys, as BullMQ names them, for the queue makam's services use for this class
          const prefix = find(manifests, 'ConfigMap', 'makam-config').data.MAKAM_QUEUE_PREFIX;
          const keys = new QueueKeys(prefix).getKeys(queueName(pool));
          assert.equal(keys.wait, `makam-q:train-${pool}:wait`);
          const trigger = (name: string) => so.spec.triggers.find((t: Obj) => t.name === name);
          for (const [name, key] of [['waiting', keys.wait], ['active', keys.active]] as const) {
            assert.equal(trigger(name).type, 'redis');
            assert.equal(trigger(name).metadata.listName, key);
            assert.equal(trigger(name).metadata.listLength, '1', 'one job per pod');
            assert.equal(trigger(name).authenticationRef.name, 'makam-redis');
          }
          const modifiers = so.spec.advanced.scalingModifiers;
          assert.equal(modifiers.formula, 'waiting + active');
          assert.equal(modifiers.target, '1');
          assert.equal(so.spec.minReplicaCount, POOLS[pool]!.minReplicas);
          assert.ok(so.spec.maxReplicaCount >= 1);
          const auth = find(manifests, 'TriggerAuthentication', 'makam-redis');
          assert.deepEqual(auth.spec.secretTargetRef.map((r: Obj) => [r.parameter, r.name, r.key]).sort(), [['address', 'makam-redis', 'address'], ['password', 'makam-redis', 'password']]);
        });

        if (pool === 'gpu-32g') {
          test('scales to zero when idle, and never down while a job waits or runs', () => {
            const so = find(manifests, 'ScaledObject', 'worker-gpu-32g');
            assert.equal(so.spec.minReplicaCount, 0);
            assert.equal(so.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.selectPolicy, 'Disabled');
            assert.ok(so.spec.cooldownPeriod >= 300);
          });
        }

        test('a rollout replaces pods one by one without asking for another GPU; autoscalers do not evict runs', () => {
          assert.deepEqual(w.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
          assert.equal(podTemplate(w).metadata.annotations['cluster-autoscaler.kubernetes.io/safe-to-evict'], 'false');
          assert.ok(pod.terminationGracePeriodSeconds >= 30);
        });
      });
    }
  });
}

test('the ConfigMap sets only variables the services read (README, Configuration)', () => {
  const readme = read('README.md');
  const data = find(render('deploy/base'), 'ConfigMap', 'makam-config').data;
  for (const name of Object.keys(data)) assert.match(readme, new RegExp(`\`${name}\``), name);
});

test('the external-redis component removes the in-cluster Redis and leaves a valid set', async () => {
  const dir = scratchDir('deploy-external-redis');
  try {
    const up = path.relative(dir, rel('deploy'));
    writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${up}/overlays/all-pools\ncomponents:\n  - ${up}/components/external-redis\n`,
    );
    const manifests = kustomize(dir);
    for (const [kind, name] of [['StatefulSet', 'redis'], ['Service', 'redis'], ['PodDisruptionBudget', 'redis'], ['NetworkPolicy', 'redis-ingress']]) {
      assert.equal(manifests.some((m) => m.kind === kind && m.metadata.name === name), false, `${kind}/${name} removed`);
    }
    find(manifests, 'Deployment', 'api');
    find(manifests, 'TriggerAuthentication', 'makam-redis');
    assert.deepEqual(await checkKubernetesTypes(manifests), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the redis-sentinel component: three data pods, three sentinels, every process and scaler through them', async () => {
  const dir = scratchDir('deploy-redis-sentinel');
  try {
    const up = path.relative(dir, rel('deploy'));
    writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${up}/overlays/all-pools\ncomponents:\n  - ${up}/components/redis-sentinel\n`,
    );
    const manifests = kustomize(dir);
    assert.deepEqual(await checkKubernetesTypes(manifests), []);
    const redis = find(manifests, 'StatefulSet', 'redis');
    const sentinel = find(manifests, 'StatefulSet', 'redis-sentinel');
    assert.equal(redis.spec.replicas, 3);
    assert.equal(sentinel.spec.replicas, 3);
    const scripts = find(manifests, 'ConfigMap', 'redis-sentinel-scripts').data;
    for (const flag of ['--appendonly yes', '--appendfsync always', '--maxmemory-policy noeviction', '--min-replicas-to-write 1', '--requirepass', '--masterauth']) assert.ok(scripts['redis.sh'].includes(flag), flag);
    assert.deepEqual(container(redis, 'redis').command, ['sh', '/scripts/redis.sh']);
    assert.match(scripts['sentinel.sh'], /sentinel monitor mymaster \$primary 6379 2\n/, 'a quorum of two of the three');
    // Every makam process reads makam-config: the sentinels listed there are the StatefulSet's pods.
    const config = find(manifests, 'ConfigMap', 'makam-config').data;
    assert.equal(config.REDIS_SENTINEL_NAME, 'mymaster');
    const headless = find(manifests, 'Service', 'redis-sentinel');
    assert.equal(headless.spec.clusterIP, 'None');
    assert.deepEqual(config.REDIS_SENTINELS.split(','), [0, 1, 2].map((i) => `redis-sentinel-${i}.${headless.metadata.name}:${headless.spec.ports[0].port}`));
    for (const w of workloads(manifests).filter((x) => x.metadata.name === 'api' || x.metadata.name.startsWith('worker-'))) {
      const c = container(w, w.metadata.name === 'api' ? 'api' : 'dispatcher');
      assert.ok(c.envFrom.some((e: Obj) => e.configMapRef?.name === 'makam-config'), `${w.metadata.name} reads makam-config`);
    }
    for (const so of byKind(manifests, 'ScaledObject')) {
      for (const t of so.spec.triggers) {
        assert.equal(t.type, 'redis-sentinel', so.metadata.name);
        assert.equal(t.metadata.sentinelMaster, 'mymaster');
        assert.equal(t.metadata.addresses.split(',').length, 3);
      }
    }
    // Who may reach the sentinels and the data pods: makam's processes, each other, KEDA.
    const sentinelFrom = find(manifests, 'NetworkPolicy', 'redis-sentinel-ingress').spec.ingress[0];
    assert.deepEqual(sentinelFrom.ports, [{ protocol: 'TCP', port: 26379 }]);
    const redisFrom = find(manifests, 'NetworkPolicy', 'redis-ingress').spec.ingress[0].from;
    for (const component of ['redis', 'redis-sentinel']) {
      assert.ok(redisFrom.some((p: Obj) => p.podSelector?.matchLabels?.['app.kubernetes.io/component'] === component), `${component} reaches the data pods`);
    }
    const pdbs = byKind(manifests, 'PodDisruptionBudget');
    assert.ok(pdbs.some((p) => selects(p.spec.selector, podTemplate(sentinel).metadata.labels) && p.spec.minAvailable === 2));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the type check is a real one: a misplaced field and a wrong type are reported', async () => {
  const api = structuredClone(find(render('deploy/base'), 'Deployment', 'api'));
  api.spec.template.spec.containers[0].nodeSelector = { a: 'b' };
  api.spec.replicas = 'two';
  const problems = await checkKubernetesTypes([api]);
  assert.ok(problems.length > 0);
  assert.match(problems.join('\n'), /replicas|nodeSelector/);
  const [onlyUnknown] = await checkKubernetesTypes([{ ...structuredClone(find(render('deploy/base'), 'Service', 'api')), spec: { ...find(render('deploy/base'), 'Service', 'api').spec, selectr: {} } }]);
  assert.match(onlyUnknown ?? '', /selectr/);
});

test('deploy/tools/hf-download.yaml: a valid Job that pre-loads the cache the workers mount', async () => {
  const manifests = parseYamlStream(read('deploy/tools/hf-download.yaml'));
  assert.deepEqual(await checkKubernetesTypes(manifests), []);
  const job = find(manifests, 'Job', 'hf-download');
  const c = container(job, 'hf-download');
  assert.equal(envValue(c, 'HF_HOME'), '/var/cache/huggingface');
  assert.equal(envValue(c, 'HF_HUB_OFFLINE'), '0');
  assert.equal(podTemplate(job).spec.volumes.find((v: Obj) => v.name === 'hf-cache').persistentVolumeClaim.claimName, 'makam-hf-cache');
  assert.match(c.args.join('\n'), /hf download "\$model"/);
  assert.match(c.args.join('\n'), /dbmdz\/bert-base-turkish-cased/);
});

after(() => rendered.clear());
