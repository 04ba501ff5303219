// The API process: config, logger, listen, and a graceful close on SIGTERM/SIGINT.
import { createLogger } from '@makam/shared/logger';
import { startTracing } from '@makam/shared/tracing';
import { buildApp } from './app.ts';
import { loadApiConfig } from './config.ts';

const config = loadApiConfig();
// Request lines are written off the event loop (logger.ts).
const logger = createLogger('makam-api', config.MAKAM_LOG_LEVEL, { sync: false });
// Before the app: its tracing plugin adds its hooks only when tracing is on.
const tracing = await startTracing('makam-api');
const app = await buildApp(config, logger);

let closing = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'closing');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    // app.close() stops accepting connections and waits for the open ones to end. Node closes the
    // idle keep-alive connections once, when it starts; a connection whose upload or download was
    // still in flight then becomes idle only when its response ends, and a client that keeps it
    // open (a proxy, a load balancer) would hold the exit up until the force timeout. So the idle
    // ones are closed again as they appear; requests in flight run to their end.
    const reap = setInterval(() => app.server.closeIdleConnections(), 100);
    reap.unref();
    app.close().then(
      () => tracing.shutdown().finally(() => process.exit(0)),
      (err: unknown) => {
        logger.error({ err }, 'close failed');
        process.exit(1);
      },
    );
  });
}

const address = await app.listen({ host: config.MAKAM_API_HOST, port: config.MAKAM_API_PORT });
logger.info({ address }, 'makam api listening');
