"""How the status page writes its cells, cards and tables: every value from the status
escaped (`text`), a dash for none, numbers, percentages and durations in a few words.
"""

from __future__ import annotations

from html import escape

DASH = "\u2014"


def table(head: str, rows: list[str], columns: int, empty: str) -> str:
    body = "".join(rows) or f"<tr><td colspan={columns} class=muted>{empty}</td></tr>"
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def head(*columns: str | tuple[str, str]) -> str:
    cells = (
        f"<th class={c[1]}>{c[0]}</th>" if isinstance(c, tuple) else f"<th>{c}</th>"
        for c in columns
    )
    return "<tr>" + "".join(cells) + "</tr>"


def card(label: str, value: str, note: str) -> str:
    note_html = f"<div class=note>{note}</div>" if note else ""
    return (
        f"<div class=card><div class=label>{label}</div>"
        f"<div class=value>{value}</div>{note_html}</div>"
    )


def badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{escape(text)}</span>'


def text(value: object) -> str:
    return DASH if value is None else escape(str(value))


def when(at: object) -> str:
    return f" <span class=muted>at {escape(str(at))}</span>" if at else ""


def number(value: object, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text(value)
    return f"{value:,.{digits}f}"


def percent(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text(value)
    return f"{value * 100:.1f}"


def duration(seconds: object) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return text(seconds)
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{secs}s"
