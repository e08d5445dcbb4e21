export { startSink, type Sink, type SinkDeps, type SinkStats } from './sink.js';
export { SinkConfig } from './config.js';
