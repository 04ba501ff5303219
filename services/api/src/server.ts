// The API process: config, logger, listen, and a graceful close on SIGTERM/SIGINT.
import { createLogger } from '@makam/shared';
import { buildApp } from './app.ts';
import { loadApiConfig } from './config.ts';

const config = loadApiConfig();
const logger = createLogger('makam-api', config.MAKAM_LOG_LEVEL);
const app = await buildApp(config, logger);

let closing = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'closing');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'close failed');
        process.exit(1);
      },
    );
  });
}

const address = await app.listen({ host: config.MAKAM_API_HOST, port: config.MAKAM_API_PORT });
logger.info({ address }, 'makam api listening');
