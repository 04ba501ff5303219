// A dispatcher process for one resource class (MAKAM_CLASS) and its workers (MAKAM_WORKERS).
import { createLogger } from '@makam/shared/logger';
import { startTracing } from '@makam/shared/tracing';
import { loadDispatcherConfig } from './config.ts';
import { Dispatcher } from './dispatcher.ts';

const config = loadDispatcherConfig();
const logger = createLogger('makam-dispatcher', config.MAKAM_LOG_LEVEL);
// Before the dispatcher: its worker clients take the tracing interceptor only when tracing is on.
const tracing = await startTracing('makam-dispatcher');
const dispatcher = new Dispatcher(config, logger);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'closing; runs in progress stay on their workers');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    dispatcher.close().then(
      () => tracing.shutdown().finally(() => process.exit(0)),
      () => process.exit(1),
    );
  });
}

await dispatcher.start();
