/**
 * Suspicious requests (a tampered or corrupt session, an unknown or malformed key) reported
 * to the logger and the `onSuspicious` hook, from wherever they are seen: the codec, the
 * signed-cookies engine, the middleware core. Django: the `django.security.SuspiciousSession` logger.
 */
import type { Settings, SuspiciousEvent } from './settings.js'

/** Report a suspicious event to the logger and the `onSuspicious` hook, never with a key. */
export function reportSuspicious(settings: Pick<Settings, 'logger' | 'onSuspicious'>, event: SuspiciousEvent): void {
  // An unknown key is mostly an expired session coming back: the hook hears of it, the log does not.
  if (event.kind !== 'unknown-key') settings.logger.warn(`${event.kind === 'tampered' ? 'Session data corrupted' : 'Suspicious session'} (${event.kind}, engine ${event.engine}): ${event.detail}`)
  if (settings.onSuspicious) {
    try {
      settings.onSuspicious(event)
    } catch (error) {
      settings.logger.error('onSuspicious hook threw', error)
    }
  }
}
