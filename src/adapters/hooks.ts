/**
 * The response plumbing every `ServerResponse`-based framework shares (`node:http` and Express):
 * `writeHead`, `write` and `end` are held until the session is saved and its cookie set, so the
 * first byte of the response leaves only after the save — a redirect right after login never
 * races the write. Framework-neutral decisions come from the middleware core; this module only
 * writes them on a `ServerResponse`.
 */
import { ServerResponse, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'
import { patchVary, type RequestSession, type ResponseDecision, type Sessions } from '../middleware.js'
import type { SessionData } from '../session.js'

type Args = unknown[]
type Write = (...args: Args) => boolean

/** The `Set-Cookie` values of `decision`, the session's first, then the layers'. */
function setCookiesOf(decision: ResponseDecision): string[] {
  const values = decision.setCookie ? [decision.setCookie] : []
  if (decision.cookies) values.push(...decision.cookies)
  return values
}

/** `existing` (a header value as `getHeader` gives it, or none) as a list of strings. */
function listOf(existing: unknown): string[] {
  return existing === undefined ? [] : Array.isArray(existing) ? existing.map(String) : [String(existing)]
}

/**
 * Merge our `Set-Cookie`/`Vary`/`Cache-Control` into headers passed straight to
 * `writeHead(status, headers)`; what is merged is taken off `decision`.
 */
function mergeIntoHeadArgs(args: Args, decision: ResponseDecision): void {
  const at = typeof args[1] === 'string' ? 2 : 1
  const headers = args[at]
  if (headers === undefined || headers === null) return
  const cookies = setCookiesOf(decision)
  if (Array.isArray(headers)) {
    // Raw form [name, value, name, value, …]: Node (20) applies each pair with setHeader, so a
    // Set-Cookie or Vary pair would replace what applyDecision set. Merge into the last pair of
    // each name instead, which is the one that wins.
    const raw = headers as unknown[]
    const last = (wanted: string): number => {
      for (let i = raw.length - 2; i >= 0; i -= 2) if (String(raw[i]).toLowerCase() === wanted) return i + 1
      return -1
    }
    const cookieAt = cookies.length ? last('set-cookie') : -1
    if (cookieAt !== -1) {
      raw[cookieAt] = [...listOf(raw[cookieAt]), ...cookies]
      decision.setCookie = null
      decision.cookies = null
    }
    const varyAt = decision.vary ? last('vary') : -1
    if (varyAt !== -1) {
      raw[varyAt] = patchVary(raw[varyAt] as string | string[])
      decision.vary = false
    }
    if (decision.cacheControl) {
      // Every pair of that name, not only the last: none may keep a weaker directive.
      for (let i = 0; i < raw.length; i += 2) if (String(raw[i]).toLowerCase() === 'cache-control') raw[i + 1] = decision.cacheControl
    }
    return
  }
  const record = headers as OutgoingHttpHeaders
  for (const name of Object.keys(record)) {
    const lower = name.toLowerCase()
    if (lower === 'set-cookie' && cookies.length && (decision.setCookie || decision.cookies)) {
      record[name] = [...listOf(record[name]), ...cookies]
      decision.setCookie = null
      decision.cookies = null
    } else if (lower === 'vary' && decision.vary) {
      record[name] = patchVary(record[name] as string | string[])
      decision.vary = false
    } else if (lower === 'cache-control' && decision.cacheControl) {
      record[name] = decision.cacheControl
    }
  }
}

function applyDecision(res: ServerResponse, decision: ResponseDecision): void {
  if (decision.vary) res.setHeader('Vary', patchVary(res.getHeader('Vary') as string | string[] | undefined))
  if (decision.cacheControl) res.setHeader('Cache-Control', decision.cacheControl)
  const { setCookie, cookies } = decision
  if (setCookie || cookies) {
    const existing = res.getHeader('Set-Cookie')
    // The common case, one session cookie and nothing else, as a plain string.
    if (existing === undefined && !cookies) res.setHeader('Set-Cookie', setCookie!)
    else res.setHeader('Set-Cookie', [...listOf(existing), ...setCookiesOf(decision)])
  }
}

const OPEN = 0
const SAVING = 1
const DONE = 2

/** Where a hooked response keeps its state: one object per response, read by the shared hooks below. */
const HOOK = Symbol('sessionkit.response')

type Hooked = ServerResponse & { [HOOK]?: ResponseHook }

/** Responses hooked through their prototype (see {@link hookResponse}), and their state. */
const BY_RESPONSE = new WeakMap<ServerResponse, ResponseHook>()

/** The methods a patched prototype had before; its patched ones call them for responses not hooked. */
interface Originals {
  writeHead: (...args: Args) => ServerResponse
  write: Write
  end: (...args: Args) => ServerResponse
  /** The patched methods, to tell whether the prototype still has them. */
  patched: { writeHead: unknown; write: unknown; end: unknown }
}
const PATCHED = new WeakMap<object, Originals>()

/**
 * The state of one hooked response. Its hooks are shared functions that find this object
 * under `res[HOOK]` (own-property hooks) or in `BY_RESPONSE` (prototype hooks): no closure
 * per request, and no per-response V8 hidden class (a per-request accessor or closure gives
 * each response a map and descriptor array of its own, which the garbage collector then has
 * to clean up).
 */
class ResponseHook {
  phase = OPEN
  failed = false
  head: Args | null = null
  writes: Args[] | null = null
  ending: Args | null = null

  constructor(
    readonly sessions: Sessions<any>,
    public state: RequestSession<any> | null,
    readonly req: IncomingMessage,
    readonly res: Hooked,
    /** Hooked through the prototype (`BY_RESPONSE`) rather than own properties of `res`. */
    readonly viaPrototype: boolean,
    readonly writeHead: (...args: Args) => ServerResponse,
    readonly write: Write,
    readonly end: (...args: Args) => ServerResponse,
  ) {}

  onWriteHead(args: Args): ServerResponse {
    if (this.failed) return this.res
    if (this.phase === DONE) return this.writeHead.apply(this.res, args)
    this.head = args
    this.commit()
    return this.res
  }

  onWrite(args: Args): boolean {
    if (this.failed) return false
    if (this.phase === DONE) return this.write.apply(this.res, args)
    if (this.ending) return false
    ;(this.writes ??= []).push(args)
    this.commit()
    return true
  }

  onEnd(args: Args): ServerResponse {
    if (this.failed) return this.res
    if (this.phase === DONE) return this.end.apply(this.res, args)
    if (this.ending) return this.res
    this.ending = args
    this.commit()
    return this.res
  }

  /**
   * Once the handler has begun its response (while the save runs), the headers count as sent:
   * an error thrown now must not turn the response into a 500 written after the first chunk
   * (Express's final handler and withSessions then close the connection instead).
   */
  headersSent(): boolean {
    return this.phase !== OPEN || this.res.writableEnded
  }

  /** The handler began its response: decide, save if needed, then let it through. */
  commit(): void {
    if (this.phase !== OPEN) return
    this.phase = SAVING
    const status = this.head ? Number(this.head[0]) : this.res.statusCode
    // Answered before the session was started (a load that failed, a timeout middleware): nothing of ours to write.
    if (this.state === null) return this.flush()
    const finished = this.sessions.finish(this.state, status)
    if (!(finished instanceof Promise)) {
      // Nothing to load or save: finish now, without a promise.
      this.apply(finished)
      return this.flush()
    }
    finished.then(
      (decision) => this.apply(decision),
      (error: unknown) => this.fail(error),
    ).then(
      () => this.flush(),
      (error: unknown) => {
        this.sessions.settings.logger.error('sending the response failed', error)
        this.res.destroy(error as Error)
      },
    )
  }

  apply(decision: ResponseDecision): void {
    if (this.head) mergeIntoHeadArgs(this.head, decision)
    applyDecision(this.res, decision)
  }

  /** Replace the prepared response by the error's status; the handler's later writes are dropped. */
  fail(error: unknown): void {
    this.failed = true
    const { res } = this
    const { status, body } = sessionFailure(error, this.sessions.settings, 'save')
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    for (const [name, value] of Object.entries(FAILURE_HEADERS)) res.setHeader(name, value)
    res.setHeader('Content-Length', Buffer.byteLength(body))
    this.head = [status]
    this.writes = null
    this.ending = [this.req.method === 'HEAD' ? undefined : body]
  }

  flush(): void {
    this.phase = DONE
    const { res } = this
    if (this.viaPrototype) {
      // A failed response stays hooked: the handler's later writes are dropped.
      if (!this.failed) BY_RESPONSE.delete(res)
    } else {
      // Unhook, last added first, so V8 keeps `res` on its fast properties; a hook another
      // middleware has since wrapped around ours stays (ours passes calls through from now on).
      delete (res as { headersSent?: boolean }).headersSent
      if (!this.failed) {
        if (res.end === hookedEnd) delete (res as Partial<ServerResponse>).end
        if (res.write === hookedWrite) delete (res as Partial<ServerResponse>).write
        if (res.writeHead === hookedWriteHead) delete (res as Partial<ServerResponse>).writeHead
      }
    }
    if (this.head) this.writeHead.apply(res, this.head)
    const writes = this.writes
    this.writes = null
    if (writes) for (const args of writes) this.write.apply(res, args)
    if (this.ending) this.end.apply(res, this.ending)
  }
}

function hookedWriteHead(this: Hooked, ...args: Args): ServerResponse {
  return this[HOOK]!.onWriteHead(args)
}

function hookedWrite(this: Hooked, ...args: Args): boolean {
  return this[HOOK]!.onWrite(args)
}

function hookedEnd(this: Hooked, ...args: Args): ServerResponse {
  return this[HOOK]!.onEnd(args)
}

const HEADERS_SENT: PropertyDescriptor = {
  configurable: true,
  get(this: Hooked): boolean {
    return this[HOOK]!.headersSent()
  },
}

/** The getter of `headersSent` that `proto` inherits (Node's `OutgoingMessage`). */
function headersSentGetter(proto: object): (this: ServerResponse) => boolean {
  for (let p: object | null = proto; p !== null; p = Object.getPrototypeOf(p)) {
    const get = Object.getOwnPropertyDescriptor(p, 'headersSent')?.get
    if (get) return get as (this: ServerResponse) => boolean
  }
  return function (this: ServerResponse) {
    return (this as unknown as { _header: unknown })._header != null
  }
}

/**
 * Patch `proto`, once, so its `writeHead`/`write`/`end`/`headersSent` hook the responses in
 * `BY_RESPONSE` and pass every other call through unchanged. The originals, or `null` when
 * the prototype's methods were replaced after our patch (then hook with own properties).
 */
function patchedPrototype(proto: ServerResponse): Originals | null {
  const known = PATCHED.get(proto)
  if (known) {
    const { patched } = known
    return proto.writeHead === patched.writeHead && proto.write === patched.write && proto.end === patched.end ? known : null
  }
  const writeHead = proto.writeHead as (...args: Args) => ServerResponse
  const write = proto.write as Write
  const end = proto.end as (...args: Args) => ServerResponse
  const sent = headersSentGetter(proto)
  const patched = {
    writeHead(this: ServerResponse, ...args: Args): ServerResponse {
      const hook = BY_RESPONSE.get(this)
      return hook ? hook.onWriteHead(args) : writeHead.apply(this, args)
    },
    write(this: ServerResponse, ...args: Args): boolean {
      const hook = BY_RESPONSE.get(this)
      return hook ? hook.onWrite(args) : write.apply(this, args)
    },
    end(this: ServerResponse, ...args: Args): ServerResponse {
      const hook = BY_RESPONSE.get(this)
      return hook ? hook.onEnd(args) : end.apply(this, args)
    },
  }
  Object.defineProperties(proto, {
    writeHead: { configurable: true, writable: true, value: patched.writeHead },
    write: { configurable: true, writable: true, value: patched.write },
    end: { configurable: true, writable: true, value: patched.end },
    headersSent: {
      configurable: true,
      get(this: ServerResponse): boolean {
        const hook = BY_RESPONSE.get(this)
        return hook ? hook.headersSent() : sent.call(this)
      },
    },
  })
  const originals = { writeHead, write, end, patched }
  PATCHED.set(proto, originals)
  return originals
}

const hasOwn = Object.prototype.hasOwnProperty

function hookOf(res: ServerResponse): ResponseHook {
  return BY_RESPONSE.get(res) ?? (res as Hooked)[HOOK]!
}

/**
 * Hook `res` so that `writeHead`, `write` and `end` wait for the session of `state` to be
 * saved (and its cookie set). On a store failure or a session deleted meanwhile, the response
 * the handler prepared is replaced by 503 / 400 with a short text body (and the error logged).
 *
 * A plain `ServerResponse` gets own-property hooks, removed once the response is through.
 * A response whose prototype is a framework's own (Express gives each app one, and sets it on
 * every response) is hooked through that prototype, patched once to look the response up in
 * a `WeakMap` and to pass any other response through unchanged: adding properties to an
 * object whose prototype was swapped costs V8 microseconds each (a new hidden class every
 * time), about 10 µs a request for the four hooks. A response already carrying its own
 * `writeHead`/`write`/`end` (a middleware that wrapped them before this one) gets own hooks.
 */
export function hookResponse<T extends object>(sessions: Sessions<T>, state: RequestSession<T> | null, req: IncomingMessage, res: ServerResponse): void {
  const hooked = res as Hooked
  const proto = Object.getPrototypeOf(res) as ServerResponse
  const originals =
    proto !== ServerResponse.prototype && !hasOwn.call(res, 'writeHead') && !hasOwn.call(res, 'write') && !hasOwn.call(res, 'end')
      ? patchedPrototype(proto)
      : null
  if (originals) {
    BY_RESPONSE.set(res, new ResponseHook(sessions, state, req, hooked, true, originals.writeHead, originals.write, originals.end))
    return
  }
  hooked[HOOK] = new ResponseHook(
    sessions,
    state,
    req,
    hooked,
    false,
    res.writeHead as (...args: Args) => ServerResponse,
    res.write as Write,
    res.end as (...args: Args) => ServerResponse,
  )
  res.writeHead = hookedWriteHead as ServerResponse['writeHead']
  res.write = hookedWrite as ServerResponse['write']
  res.end = hookedEnd as ServerResponse['end']
  Object.defineProperty(res, 'headersSent', HEADERS_SENT)
}

/**
 * Start the request's session (`sessions.start`) and hook `res` (see {@link hookResponse}).
 * Synchronous when the session needs no load (no cookie, or `lazy`); a promise otherwise.
 * On a failed load the promise rejects and `res` is unhooked, ready for the error response.
 */
export function startSession<T extends object = SessionData>(
  sessions: Sessions<T>,
  req: IncomingMessage,
  res: ServerResponse,
): RequestSession<T> | Promise<RequestSession<T>> {
  const started = sessions.start(req.headers.cookie)
  // Hooked at once, in the request's own tick, even when the load is still to come: adding
  // the hooks to `res` later, from a promise reaction, was measured several times slower.
  hookResponse(sessions, started instanceof Promise ? null : started, req, res)
  if (!(started instanceof Promise)) return started
  return started.then(
    (state) => {
      hookOf(res).state = state
      return state
    },
    (error: unknown) => {
      const hook = hookOf(res)
      if (hook.phase === OPEN) {
        hook.phase = SAVING
        hook.flush() // unhook: the caller answers the failure with the response's own methods
      }
      throw error
    },
  )
}
