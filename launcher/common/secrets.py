"""The one rule for what counts as a secret, applied wherever a value leaves the machine.

    mask_value("db.password", "hunter2")                     # "***"
    mask_value("db_url", "postgresql://u:pw@h/db")           # "postgresql://***@h/db"
    mask_tree({"overrides": {"model.api_key": "sk-1"}})      # {"overrides": {"model.api_key": "***"}}

MLflow params and tags, the `config/launch.json` artifact and log lines that print a tracking
URI all go through these functions.

The rule, by the words of a key (split at `.`, `_`, `-` and camelCase humps, any case):
- `password`, `passphrase`, `passwd`, `pwd`, `secret(s)`, `credential(s)`, `apikey` anywhere
  mark a secret: `db.password`, `AWS_SECRET_ACCESS_KEY`, `gcp.credentials_json`.
- `token` and `key` are common in harmless names (`pad_token_id`, `monitor_key`, `key_size`),
  so they mark a secret only as the key's last word, and not after a word that makes them a
  name for something else (`pad_token`, `eos_token`, `monitor_key`, `sort_key`...):
  `hf_token`, `api_key`, `ssh.key`, `key` are secrets; `max_tokens`, `keys` are not.
- In any string value, a URL's userinfo (`scheme://USER:PASS@host`) becomes `***`, and so
  does the value of any `NAME=VALUE` whose name is a secret: a query parameter (`?token=...`),
  a `--set model.api_key=...` inside a recorded command line.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
SECRET_WORDS = frozenset(
    "password passwords passphrase passwd pwd secret secrets credential credentials apikey".split()
)
# Secrets only as a name's last word, and not after one of QUALIFIERS.
TRAILING_SECRET_WORDS = frozenset({"token", "key"})
QUALIFIERS = frozenset(
    "monitor metric sort cache dict state primary foreign partition group column label input "
    "output target pad eos bos unk sep cls mask special start end image text lookup join "
    "batch sample row".split()
)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# scheme://userinfo@ (userinfo: anything but / ? # @ and whitespace)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s]+@")
# NAME=VALUE not inside a longer name; the value stops at a separator or a quote.
_ASSIGNMENT = re.compile(r"(?<![\w.\-])(?P<name>[A-Za-z_][\w.\-]*)=(?P<value>[^\s&;#'\"]+)")
_QUOTED_ASSIGNMENT = re.compile(r"'(?P<name>[A-Za-z_][\w.\-]*)=(?P<value>[^']*)'")  # shlex-quoted


def is_secret_key(key: str) -> bool:
    """True when `key` names a secret by the rule above: `db.password`, `hfToken`, `api_key`."""
    words = [w.lower() for w in _WORD_SPLIT.split(str(key)) if w]
    if any(w in SECRET_WORDS for w in words):
        return True
    if words and words[-1] in TRAILING_SECRET_WORDS:
        return len(words) == 1 or words[-2] not in QUALIFIERS
    return False


def mask_text(text: str) -> str:
    """`text` with every URL's userinfo and every secret query parameter replaced by `***`."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)

    def assignment(m: re.Match[str]) -> str:
        return f"{m['name']}={MASK}" if is_secret_key(m["name"]) else m[0]

    if "=" not in text:
        return text
    text = _QUOTED_ASSIGNMENT.sub(lambda m: f"'{assignment(m)}'", text)
    return _ASSIGNMENT.sub(assignment, text)


def mask_value(key: str, value: Any) -> Any:
    """`***` for a secret key's value; a string with its URL credentials masked; else `value`."""
    if is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_secrets(params: dict[str, Any]) -> dict[str, Any]:
    """Copy of a flat `params` dict with every value passed through `mask_value`."""
    return {k: mask_value(k, v) for k, v in params.items()}


def mask_tree(value: Any, key: str = "") -> Any:
    """Copy of nested dicts/lists (a JSON document) with secrets masked at every level.

    A secret key masks its whole value, even a dict or a list.
    """
    if key and is_secret_key(key):
        return MASK
    if isinstance(value, dict):
        return {k: mask_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_tree(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value
