"""The dashboard's languages: one catalogue per language, negotiation, and the two page templates.

Every string the page or the login form shows lives in ``static/i18n/<lang>.json`` (the page's
script fetches the same file for the strings it builds at run time). Russian is the default, for
the signer and the people around them; English when the browser prefers it (``Accept-Language``)
or the user picks it (``?lang=en``, remembered in the ``slr_lang`` cookie).

The templates (``index.html``, ``login.html``) hold ``{{key}}`` placeholders that are replaced by
the catalogue's HTML-escaped strings. Only our own catalogue text and a language code from
:data:`LANGUAGES` ever reach the HTML: nothing from a request or from the daemon.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources

LANGUAGES = ("ru", "en")
DEFAULT = "ru"
COOKIE = "slr_lang"
_PLACEHOLDER = re.compile(r"\{\{([a-z0-9_]+)\}\}")
_STATIC = resources.files("edge.web").joinpath("static")


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The strings of ``lang`` (one of :data:`LANGUAGES`)."""
    if lang not in LANGUAGES:
        raise KeyError(lang)
    data = json.loads(_STATIC.joinpath("i18n").joinpath(f"{lang}.json").read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data.items()}


def parse_accept_language(header: str) -> list[str]:
    """Primary language subtags of an ``Accept-Language`` header, most preferred first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and 0.0 < quality <= 1.0:
            ranked.append((-quality, position, tag.split("-")[0].strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str = "", cookie: str | None = None, query: str | None = None) -> str:
    """The page's language: an explicit choice (query, then cookie), else the browser's, else Russian."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    for tag in parse_accept_language(accept_language):
        if tag in LANGUAGES:
            return tag
    return DEFAULT


@cache
def render(template: str, lang: str) -> str:
    """``static/<template>`` with every ``{{key}}`` replaced by ``lang``'s escaped string.

    A key missing from the catalogue raises ``KeyError`` (a test renders every page in every language).
    """
    strings = {**catalogue(lang), "lang": lang}
    text = _STATIC.joinpath(template).read_text(encoding="utf-8")
    return _PLACEHOLDER.sub(lambda m: html.escape(strings[m.group(1)], quote=True), text)


def cookie_header(lang: str) -> str:
    """``Set-Cookie`` remembering the chosen language for a year (not a secret: readable by the page)."""
    return f"{COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Strict"
