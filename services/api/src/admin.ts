// Operator's command line for API keys, straight against Redis (no admin key needed; whoever can
// reach Redis is an operator already):
//   node services/api/src/admin.ts keys create --tenant acme [--name "ci"]
//   node services/api/src/admin.ts keys list [--tenant acme]
//   node services/api/src/admin.ts keys revoke key_...
import { parseArgs } from 'node:util';
import { ApiKeyStore } from './tenancy/api-keys.ts';
import { createRedis } from '@makam/shared/redis';
import { loadApiConfig } from './config.ts';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { tenant: { type: 'string' }, name: { type: 'string' } } });
const config = loadApiConfig();
const redis = createRedis(config, { noReplicasWaitMs: config.MAKAM_REDIS_NOREPLICAS_WAIT_MS });
const keys = new ApiKeyStore(redis, config.MAKAM_REDIS_PREFIX);
const [group, command, arg] = positionals;
try {
  if (group === 'keys' && command === 'create' && values.tenant) {
    const { key, record } = await keys.create(values.tenant, values.name ?? null);
    console.log(JSON.stringify({ key, api_key: record }));
  } else if (group === 'keys' && command === 'list') {
    for (const k of await keys.list(values.tenant)) console.log(JSON.stringify(k));
  } else if (group === 'keys' && command === 'revoke' && arg) {
    const record = await keys.revoke(arg);
    if (!record) throw new Error(`no API key ${arg}`);
    console.log(JSON.stringify(record));
  } else {
    console.error('usage: admin.ts keys create --tenant T [--name N] | keys list [--tenant T] | keys revoke KEY_ID');
    process.exitCode = 2;
  }
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 1;
} finally {
  redis.disconnect();
}
