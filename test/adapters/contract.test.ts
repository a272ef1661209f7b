/**
 * Every HTTP adapter passes the same contract suite (`describeAdapter` from `sessionkit/testing`:
 * Django's `SessionMiddlewareTests`, what a Node server adds, and the core's extension point for
 * layers) over real HTTP on 127.0.0.1, on the routes of test/helpers/adapters.ts. What is
 * particular to each framework is in the file named after its adapter.
 */
import { describeAdapter } from 'sessionkit/testing'
import { servers } from '../helpers/adapters.ts'

for (const [name, makeServer] of servers) describeAdapter(name, makeServer)
