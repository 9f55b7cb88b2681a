"""File names made from ids (image ids, film names): the one rule every output file name goes through.

`safe_name(id)` is the id itself when it is a plain name: printable letters, digits and `. _ - + = @ , ( ) [ ]`
and spaces (Unicode letters included, NFC-normalised), not starting with `.` or a space, at most
`MAX_SAFE_BYTES` bytes in UTF-8. Any other id (a path such as `../x` or `/tmp/a.png`, a newline, an empty or
very long id, `.`/`..`) becomes a readable stem of its safe characters plus `-` and the first 10 hex digits of
the id's SHA-256, so it can never leave the output folder, never exceeds the file-name limit (255 bytes, with
room for a temporary file's prefix and suffix) and never collides with another id's name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: The longest id (UTF-8 bytes) used unchanged as a file name; temp files add about 30 bytes around it.
MAX_SAFE_BYTES = 150
#: Length of the readable stem kept from an unsafe id (characters, before the hash).
STEM_CHARS = 60
#: ... and at most this many UTF-8 bytes.
STEM_BYTES = 100
HASH_CHARS = 10

_SAFE = re.compile(r"[\w.\-+=@,()\[\] ]+")
_UNSAFE_RUN = re.compile(r"[^\w.\-+=@,()\[\]]+")


def is_safe_name(name: str) -> bool:
    """True when `name` can be used as a file name as it is (see the module docstring)."""
    return (
        bool(name)
        and _SAFE.fullmatch(name) is not None
        and name.isprintable()
        and not name.startswith((".", " "))
        and not name.endswith(" ")
        and unicodedata.normalize("NFC", name) == name
        and len(name.encode("utf-8")) <= MAX_SAFE_BYTES
    )


def safe_name(image_id: object) -> str:
    """`image_id` when it is a safe file name, else a readable safe stem plus a short hash of the id."""
    text = str(image_id)
    if is_safe_name(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    stem = _UNSAFE_RUN.sub("_", unicodedata.normalize("NFC", text)).strip("._ ")[:STEM_CHARS]
    stem = stem.encode("utf-8", "ignore")[:STEM_BYTES].decode("utf-8", "ignore").rstrip("._ ")
    return f"{stem}-{digest}" if stem else f"id-{digest}"
