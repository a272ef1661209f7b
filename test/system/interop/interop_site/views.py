"""Views the interop tests drive through Django's SessionMiddleware. Every view answers with
the session as JSON (see `describe`)."""
import json

from django.http import HttpResponse, JsonResponse


def describe(session):
    """The session as the tests compare it: key, data, Python type names, and the expiry as Django sees it."""
    data = dict(session.items())  # loads first: an unknown or expired key becomes None
    out = {"key": session.session_key, "data": data}
    out["types"] = {k: type(v).__name__ for k, v in out["data"].items()}
    try:
        out["expiryAge"] = session.get_expiry_age()
        out["expiryDate"] = session.get_expiry_date().isoformat()
        out["browserClose"] = session.get_expire_at_browser_close()
    except Exception as e:  # e.g. Django 3.2 given a 4.1+ ISO-string expiry
        out["expiryError"] = "%s: %s" % (type(e).__name__, e)
    return out


def answer(request):
    return HttpResponse(json.dumps(describe(request.session)), content_type="application/json")


def set_values(request):
    """POST {"values": {...}, "expiry": N | 0 | null}: store every value (e.g. request.session["username"])."""
    body = json.loads(request.body or b"{}")
    for key, value in body.get("values", {}).items():
        request.session[key] = value
    if "expiry" in body:
        request.session.set_expiry(body["expiry"])
    return answer(request)


def get(request):
    return answer(request)


def expiry(request):
    """GET /expiry?n=N (seconds; 0 = browser close; `none` = the global policy)."""
    n = request.GET["n"]
    request.session.set_expiry(None if n == "none" else int(n))
    return answer(request)


def flush(request):
    request.session.flush()
    return JsonResponse({"flushed": True})
