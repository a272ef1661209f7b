/**
 * `sessionkit/testing`: the suites that prove an engine or an HTTP adapter behaves like the
 * built-in ones, and the small tools they use.
 *
 * - {@link describeEngine} (`testing/engine-suite.ts`): Django's `SessionTestsMixin`, for engines;
 * - {@link describeAdapter} (`testing/adapter-suite.ts`): Django's `SessionMiddlewareTests` and
 *   what a Node server adds, for adapters, with `addTestLayer` for its `/layer` route;
 * - `manualClock`, `capturingLogger`, `dataOf`, `SUITE_SECRET` (`testing/tools.ts`).
 *
 * ```ts
 * import { describeEngine } from 'sessionkit/testing'
 * import { createSessions } from 'sessionkit'
 * describeEngine('my-engine', (settings) => createSessions({ ...settings, engine: myEngine }))
 * ```
 */
export { describeEngine } from './testing/engine-suite.js'
export type { SuiteSettings, MakeSessions, DescribeEngineOptions } from './testing/engine-suite.js'
export { describeAdapter, addTestLayer, TEST_LAYER_COOKIE } from './testing/adapter-suite.js'
export type { AdapterServer, MakeServer, DescribeAdapterOptions } from './testing/adapter-suite.js'
export { manualClock, capturingLogger, dataOf, SUITE_SECRET } from './testing/tools.js'
export type { ManualClock } from './testing/tools.js'
