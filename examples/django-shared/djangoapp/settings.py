"""The Django half of the example. Every setting that matters to sharing sessions is read from
the same environment variables the Node app reads (sessionkit's `fromEnv()`), so one set of
variables configures both sides.
"""
import os

from .dburl import parse_database_url

env = os.environ

# --- Shared with the Node app: must be identical on both sides ------------------------------
SECRET_KEY = env["SECRET_KEY"]                       # sessionkit: secretKey / SECRET_KEY
DATABASES = {"default": parse_database_url(env.get("DATABASE_URL") or "sqlite:///db.sqlite3")}  # databaseUrl
SESSION_ENGINE = "django.contrib.sessions.backends.db"  # sessionkit: engine 'db' (the default)
SESSION_COOKIE_NAME = env.get("SESSION_COOKIE_NAME") or "sessionid"      # cookieName
SESSION_COOKIE_DOMAIN = env.get("SESSION_COOKIE_DOMAIN") or None         # cookieDomain
SESSION_COOKIE_PATH = "/"                                                # cookiePath
SESSION_COOKIE_AGE = int(env.get("SESSION_COOKIE_AGE") or 1209600)       # cookieAge
USE_TZ = True  # expire_date in UTC, as sessionkit writes and compares it
TIME_ZONE = "UTC"

# --- Django only --------------------------------------------------------------------------
DEBUG = (env.get("DEBUG") or "").lower() in ("1", "true", "yes")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "djangoapp.urls"
INSTALLED_APPS = ["django.contrib.sessions"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
# The Node example keeps its own CSRF secret in a cookie named `csrftoken`, Django's default
# name, in another format; browsers send cookies to every port of a host, so give Django's
# CSRF cookie another name.
CSRF_COOKIE_NAME = "django_csrftoken"

# Where the login sends the visitor: the Node app's dashboard.
NODE_DASHBOARD_URL = env.get("NODE_DASHBOARD_URL") or "http://127.0.0.1:8000/dashboard"
# The one demo account, as in the Node example (EXAMPLE_USERNAME / EXAMPLE_PASSWORD).
DEMO_USERS = {env.get("EXAMPLE_USERNAME") or "admin": env.get("EXAMPLE_PASSWORD") or "password123"}
