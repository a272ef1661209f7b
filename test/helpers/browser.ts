/**
 * Debian's Chromium, driven by playwright-core, for the tests that need a real browser:
 * headless, no sandbox (CI runs as root), nothing fetched from the network by the browser
 * itself, a fresh profile per launch (removed afterwards), and only the pages the test opens
 * (servers on 127.0.0.1).
 *
 * Absent Chromium: the tests skip with a one-line notice, except under CI (`CI` set), where
 * they fail — a CI run that silently skips its browser test proves nothing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { underCI } from './redis.ts'

/** Debian's package `chromium`. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** The flags of every launch: headless, and nothing the browser would do on its own. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/**
 * `false` when Chromium is installed, else why the browser tests skip (printed once as a
 * one-line notice). Under CI an absent Chromium throws instead: the test file fails.
 */
export function chromiumMissing(): string | false {
  if (existsSync(CHROMIUM)) return false
  const reason = `Chromium is not installed at ${CHROMIUM} (apt-get install chromium)`
  if (underCI()) throw new Error(`${reason}; CI is set, so the browser tests must run, not skip`)
  console.warn(`# skipping the browser tests: ${reason}`)
  return reason
}

/** What `t.after` needs. */
interface Cleanup {
  after(fn: () => unknown): void
}

/** A headless Chromium on a fresh profile, closed (and its profile removed) after `t`. */
export async function launchChromium(t: Cleanup): Promise<BrowserContext> {
  const profile = mkdtempSync(path.join(tmpdir(), 'sessionkit-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS],
      timeout: 30_000,
    })
  } catch (error) {
    rmSync(profile, { recursive: true, force: true })
    throw error
  }
  t.after(async () => {
    await context.close().catch(() => undefined)
    rmSync(profile, { recursive: true, force: true })
  })
  return context
}
