export { startRater, type RaterDeps } from './rater.js';
export { RaterConfig } from './config.js';
