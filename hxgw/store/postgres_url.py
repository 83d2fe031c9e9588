"""A PostgreSQL URL read as libpq reads it, for checking it at load and for naming the
database in logs without its password; psycopg is imported only when one is read."""

from __future__ import annotations


def postgres_url_parts(url: str) -> dict[str, str] | None:
    """The connection's parts (user, password, host, port, dbname), read as libpq reads
    them; None when it cannot read them or the port is not a number."""
    # psycopg is imported only by a gateway that uses PostgreSQL.
    from psycopg import conninfo

    try:
        parts = conninfo.conninfo_to_dict(url)
    except Exception:  # psycopg's errors, and its parser's own ValueErrors
        return None
    port = str(parts.get("port", ""))
    if not all(p.isdigit() for p in port.split(",") if p):
        return None
    return {k: str(v) for k, v in parts.items() if v is not None}
