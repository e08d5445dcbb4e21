export { buildApp, type AppDeps } from './app.js';
export { start, type RunningIngest, type StartOptions } from './start.js';
export { IngestConfig } from './config.js';
export {
  InvalidUsageEventError,
  ProducerClosedError,
  UsageEventProducer,
  type UsageEventProducerOptions,
} from './producer-client.js';
