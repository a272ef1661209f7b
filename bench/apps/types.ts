import type { Server } from 'node:http'

/** A variant's server, listening on 127.0.0.1, and how to release its stores. */
export interface Built {
  server: Server
  close(): Promise<void>
}
