/**
 * What never reaches a log line or an error message: passwords in URLs and session keys. One
 * place for each scrubber, used by every engine, cache and the middleware core.
 */

/** A URL with its password replaced by `***`, for error messages and logs. */
export function redactUrl(url: string): string {
  // The user information ends at the last "@" before the path, query or fragment (WHATWG URL),
  // so a password may itself contain "@" or ":".
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#]*:)[^/?#]*@/i, '$1***@')
}

/**
 * A function that scrubs `url`'s secrets from a message (a driver's or a server's error text):
 * the URL itself becomes {@link redactUrl}'s, and its password, as written and percent-decoded,
 * becomes `***` wherever it appears.
 */
export function urlScrubber(url: string): (message: string) => string {
  const secrets: string[] = []
  try {
    const { password } = new URL(url)
    if (password) secrets.push(password, safeDecode(password))
  } catch {
    // not a parseable URL: redactUrl still hides the password where it stands in the URL
  }
  const redacted = redactUrl(url)
  return (message) => secrets.reduce((text, secret) => text.split(secret).join('***'), message.split(url).join(redacted))
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/**
 * `text` with session keys cut out: `key` wherever it appears, and anything shaped like a key
 * sessionkit makes (32 of `[a-z0-9]` at the end of a run, as in `<prefix><key>`), since a store's
 * error may quote a fresh key the caller never saw. Logs never get a session key.
 */
export function redactSessionKeys(text: string, key?: string | null): string {
  return (key ? text.split(key).join('<session key>') : text).replace(/[a-z0-9]{32}(?![a-z0-9])/g, '<session key>')
}
