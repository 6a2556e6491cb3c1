"""User-facing messages in Chinese and English.

The language follows the locale: ``EXTRACTOR_LANG`` first, then ``LC_ALL``, ``LC_MESSAGES`` and ``LANG``.
A value starting with ``zh`` selects Chinese, anything else English.
"""

from __future__ import annotations

import os

_LOCALE_VARIABLES = ("EXTRACTOR_LANG", "LC_ALL", "LC_MESSAGES", "LANG")


def current_language() -> str:
    """Return ``"zh"`` or ``"en"`` from the environment, read at call time so tests can switch it."""
    for name in _LOCALE_VARIABLES:
        value = os.environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def is_chinese() -> bool:
    return current_language() == "zh"


def pick(zh: str, en: str, **values: object) -> str:
    """Format whichever of the two texts matches the current language."""
    text = zh if is_chinese() else en
    return text.format(**values) if values else text
