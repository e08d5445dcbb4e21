export * from './money.js';
export * from './contracts/common.js';
export * from './contracts/error.js';
export * from './contracts/usage-event.js';
export * from './contracts/price.js';
export * from './contracts/account.js';
export * from './contracts/rated-event.js';
export * from './topics.js';
