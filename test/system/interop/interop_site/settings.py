"""Settings of the interop project, all from the environment, named as sessionkit's `fromEnv()` reads them.

SECRET_KEY (required), SECRET_KEY_FALLBACKS (JSON list; Django >= 4.1 only), DATABASE_URL
(default sqlite:///db.sqlite3), SESSION_ENGINE (`db`, `signed_cookies`, ... or the dotted
module), SESSION_COOKIE_NAME, SESSION_COOKIE_DOMAIN, SESSION_COOKIE_AGE,
SESSION_EXPIRE_AT_BROWSER_CLOSE, SESSION_FILE_PATH, DJANGO_CACHES (the CACHES setting, as JSON).
"""
import json
import os

from .dburl import parse_database_url

env = os.environ

SECRET_KEY = env["SECRET_KEY"]
SECRET_KEY_FALLBACKS = json.loads(env.get("SECRET_KEY_FALLBACKS") or "[]")  # ignored before Django 4.1
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "interop_site.urls"
INSTALLED_APPS = ["django.contrib.sessions"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
DATABASES = {"default": parse_database_url(env.get("DATABASE_URL") or "sqlite:///db.sqlite3")}

# expire_date is stored and compared in UTC on both sides only with USE_TZ = True.
USE_TZ = True
TIME_ZONE = "UTC"

_engine = env.get("SESSION_ENGINE") or "db"
SESSION_ENGINE = _engine if "." in _engine else "django.contrib.sessions.backends." + _engine
SESSION_COOKIE_NAME = env.get("SESSION_COOKIE_NAME") or "sessionid"
SESSION_COOKIE_DOMAIN = env.get("SESSION_COOKIE_DOMAIN") or None
SESSION_COOKIE_AGE = int(env.get("SESSION_COOKIE_AGE") or 1209600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = (env.get("SESSION_EXPIRE_AT_BROWSER_CLOSE") or "").lower() in ("1", "true", "yes", "on")
SESSION_FILE_PATH = env.get("SESSION_FILE_PATH") or None
# DJANGO_CACHES: Django's CACHES setting as JSON (django-redis, PyMemcacheCache, ...); default LocMemCache.
if env.get("DJANGO_CACHES"):
    CACHES = json.loads(env["DJANGO_CACHES"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.security": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}
