export { buildApp, type AppDeps } from './app.js';
export { start, type RunningIngest, type StartOptions } from './start.js';
export { IngestConfig } from './config.js';
export {
  InvalidUsageEventError,
  ProducerClosedError,
  UsageEventProducer,
  type UsageEventProducerOptions,
} from './producer-client.js';
export {
  AccountSuspendedError, AllowedLimitReachedError, CaptureFailedError, CardRequiredError, CreditsClient, CreditsRefusedError,
  CreditsRequestError, GateUnavailableError, MonthlyLimitReachedError, PaymentRequiredError,
  type AuthorizeRequest, type Charged, type CreditsClientOptions, type Hold, type WorkOutcome,
} from './credits-client.js';
