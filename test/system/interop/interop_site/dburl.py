"""DATABASE_URL -> Django's DATABASES entry, for the forms sessionkit's `databaseUrl` takes.

A dependency-free subset of dj-database-url: `sqlite:////absolute.db`, `sqlite:///relative.db`
and `postgres://user:password@host:port/name` (also `postgresql://`, and `?options=…` passed
through to psycopg2).
"""
from urllib.parse import parse_qs, unquote, urlsplit


def parse_database_url(url):
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme == "sqlite":
        if rest in (":memory:", "//:memory:"):
            name = ":memory:"
        elif rest.startswith("///"):
            name = unquote(rest[3:])  # sqlite:////abs -> /abs ; sqlite:///rel -> rel
        elif rest.startswith("//"):
            raise ValueError("a sqlite URL names no host: use sqlite:////absolute/path.db")
        else:
            name = rest
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if scheme in ("postgres", "postgresql"):
        parts = urlsplit(url)
        entry = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
        query = parse_qs(parts.query)
        if query:
            entry["OPTIONS"] = {k: v[-1] for k, v in query.items()}
        return entry
    raise ValueError("DATABASE_URL must start with sqlite: or postgres: (got %r)" % scheme)
