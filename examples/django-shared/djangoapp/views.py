"""A Django login that the Node app honours: the session Django writes here is the session
sessionkit reads there (same table, same SECRET_KEY, same cookie).

The Node example's dashboard greets `request.session["authUser"]`, the key its own login
writes; `username` is the key a Django app typically sets. This view sets both. A project
using django.contrib.auth would do it in a `user_logged_in` receiver (see README.md).
"""
import hmac
from html import escape

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.views.decorators.http import require_http_methods

PAGE = """<!doctype html><meta charset="utf-8"><title>Django · shared session</title>
<main style="font: 16px/1.5 system-ui; max-width: 28rem; margin: 3rem auto">%s</main>"""


def home(request):
    # `authUser` is written by both logins (this one and the Node example's); `username` by this one.
    user = request.session.get("authUser")
    if user is None:
        body = '<h1>Django</h1><p>Not logged in.</p><p><a href="/login">Log in on Django</a></p>'
    else:
        body = (
            "<h1>Django</h1><p>Logged in as <b>%s</b> (session shared with Node).</p>"
            '<p><a href="%s">Node dashboard</a> · <a href="/logout">Log out</a></p>'
        ) % (escape(user), escape(settings.NODE_DASHBOARD_URL))
    return HttpResponse(PAGE % body)


@require_http_methods(["GET", "POST"])
def login(request):
    error = ""
    if request.method == "POST":
        username = request.POST.get("username", "")
        expected = settings.DEMO_USERS.get(username)
        if expected is not None and hmac.compare_digest(expected.encode(), request.POST.get("password", "").encode()):
            request.session.cycle_key()  # new key on login, as django.contrib.auth.login() does
            request.session["username"] = username
            request.session["authUser"] = username  # what the Node example's /dashboard reads
            return HttpResponseRedirect(settings.NODE_DASHBOARD_URL)
        error = '<p style="color: #b91c1c">Invalid credentials</p>'
    form = """<h1>Log in on Django</h1>%s
<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="%s">
<p><label>Username <input name="username" required></label></p>
<p><label>Password <input name="password" type="password" required></label></p>
<p><button>Log in</button></p></form>""" % (error, escape(get_token(request)))
    return HttpResponse(PAGE % form)


def logout(request):
    request.session.flush()  # deletes the row: the Node app sees the visitor logged out too
    return HttpResponseRedirect("/")
