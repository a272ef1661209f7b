#!/usr/bin/env python3
"""Real Django, driven by test/system/interop.test.ts over JSON lines.

Run as `/usr/bin/python3 test/system/interop/driver.py` with the interop project's settings in the
environment (see interop_site/settings.py). Each line on stdin is a request
`{"id": n, "op": "...", ...}`; each answer is one line on stdout, `{"id": n, "ok": true,
"result": ...}` or `{"id": n, "ok": false, "error": "..."}`. A request may carry
`"settings": {...}`, applied with Django's `override_settings` while it runs (another
SECRET_KEY, for instance). Everything else Django prints goes to stderr.

The operations use Django's own objects: `SessionStore` of the configured SESSION_ENGINE
(`django.contrib.sessions.backends.db` or `.signed_cookies`), the `Session` model, signing,
and the test `Client` for requests through `SessionMiddleware`.
"""
import json
import logging
import os
import sys
import traceback
from datetime import datetime, timezone
from importlib import import_module

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interop_site.settings")

PROTOCOL = sys.stdout
sys.stdout = sys.stderr  # nothing but answers on the protocol stream

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.core import signing  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from interop_site.views import describe  # noqa: E402



def store():
    """The configured engine's `SessionStore` (read per request: `settings` may override SESSION_ENGINE)."""
    return import_module(settings.SESSION_ENGINE).SessionStore


def is_db():
    return settings.SESSION_ENGINE.endswith(".db")


class Capture(logging.Handler):
    """Counts Django's security warnings ("Session data corrupted")."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


security = Capture()
logging.getLogger("django.security").addHandler(security)


def iso(dt):
    return None if dt is None else dt.astimezone(timezone.utc).isoformat()


def row(key):
    r = Session.objects.filter(session_key=key).values("session_data", "expire_date").first()
    return None if r is None else {"sessionData": r["session_data"], "expireDate": iso(r["expire_date"])}


def with_row(out):
    if is_db() and out.get("key"):
        out["row"] = row(out["key"])
    return out


def op_version(req):
    return {"version": django.get_version(), "versionInfo": list(django.VERSION[:3]), "engine": settings.SESSION_ENGINE}


def op_create(req):
    """A new session holding `values` (or `valuesJson`, parsed by Python: exact big integers,
    NaN), with `expiry` when given; saved."""
    s = store()()
    s.update(json.loads(req["valuesJson"]) if "valuesJson" in req else req.get("values", {}))
    if "datetimeKey" in req:  # a value only a pickling cache can hold
        s[req["datetimeKey"]] = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    if "expiry" in req:
        s.set_expiry(req["expiry"])
    s.save()
    return with_row(describe(s))


def op_load(req):
    """The session under `key`, as Django's store reads it; `equal` compares it with `expect` in Python."""
    s = store()(req["key"])
    out = describe(s)
    if "expect" in req:
        out["equal"] = out["data"] == req["expect"]
    return with_row(out)


def op_update(req):
    """Load the session under `key`, store `values` (and `expiry`), save it (re-signing it)."""
    s = store()(req["key"])
    s.update(req.get("values", {}))
    if "expiry" in req:
        s.set_expiry(req["expiry"])
    s.save()
    return with_row(describe(s))


def op_cycle(req):
    """`cycle_key()` of the session under `key` (Django's login): the data under a new key, the old one deleted."""
    s = store()(req["key"])
    s.cycle_key()
    return with_row(describe(s))


def op_flush(req):
    """`flush()` of the session under `key` (Django's logout)."""
    s = store()(req["key"])
    s.load()
    s.flush()
    return {"key": s.session_key}


def op_exists(req):
    return store()().exists(req["key"])


def op_row(req):
    return row(req["key"])


def op_keys(req):
    return sorted(Session.objects.values_list("session_key", flat=True))


def op_insert_row(req):
    """A raw django_session row: `session_data` exactly as given."""
    expire = datetime.fromisoformat(req["expireDate"])
    Session.objects.create(session_key=req["key"], session_data=req["sessionData"], expire_date=expire)
    return row(req["key"])


def op_decode(req):
    """`SessionStore().decode(value)` of each value, and the security warnings each logged."""
    out = []
    for value in req["values"]:
        before = len(security.messages)
        data = store()().decode(value)
        out.append({"data": data, "warnings": security.messages[before:]})
    return out


def op_dumps(req):
    """`signing.dumps` with an explicit key and salt: values signed as another app or another secret would."""
    return signing.dumps(req["data"], key=req["secretKey"], salt=req["salt"], compress=req.get("compress", True))


def op_loads(req):
    """`signing.loads` of each item (value, secretKey, salt, maxAge): the data, or the exception's name."""
    out = []
    for item in req["items"]:
        try:
            data = signing.loads(item["value"], key=item["secretKey"], salt=item["salt"], max_age=item.get("maxAge"))
            out.append({"ok": True, "data": data})
        except Exception as e:
            out.append({"ok": False, "error": type(e).__name__})
    return out


def op_request(req):
    """One request through Django's SessionMiddleware (the test Client), with `cookies` sent
    (or `cookieHeader`, the raw Cookie header)."""
    client = Client()
    for name, value in req.get("cookies", {}).items():
        client.cookies[name] = value
    extra = {"HTTP_COOKIE": req["cookieHeader"]} if "cookieHeader" in req else {}
    body = json.dumps(req["json"]) if "json" in req else ""
    response = client.generic(req.get("method", "GET"), req["path"], body, content_type="application/json", **extra)
    content = response.content.decode()
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = content
    return {
        "status": response.status_code,
        "body": parsed,
        "setCookie": [morsel.OutputString() for morsel in response.cookies.values()],
        "vary": response.get("Vary"),
    }


def op_cache_clear(req):
    """Empty Django's default cache (the cache in front of cached_db)."""
    from django.core.cache import cache

    cache.clear()
    return None


def op_wipe(req):
    Session.objects.all().delete()
    return []


def op_clear_expired(req):
    store().clear_expired()
    return op_keys(req)


OPS = {name[3:]: fn for name, fn in globals().items() if name.startswith("op_")}


def safe(value):
    """JSON has no NaN, infinities or datetimes (Python writes the first two anyway): tag them, so the answer stays JSON."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return {"$float": repr(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dict):
        return {k: safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe(v) for v in value]
    return value


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            with override_settings(**req.get("settings", {})):
                result = OPS[req["op"]](req)
            answer = {"id": req.get("id"), "ok": True, "result": safe(result)}
        except Exception as e:
            answer = {"id": req.get("id"), "ok": False, "error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()}
        PROTOCOL.write(json.dumps(answer, allow_nan=False) + "\n")
        PROTOCOL.flush()


if __name__ == "__main__":
    main()
