"""The pixel limit every image reader checks from the header, before decoding (decompression-bomb guard)."""

from __future__ import annotations

import os

from lungprior.errors import ImageReadError, LungpriorError

#: Default limit: 50 megapixels, well above the largest chest film (about 4300 x 4300 = 18.5 MP).
DEFAULT_MAX_PIXELS = 50_000_000
#: Environment variable that sets another limit (a number of pixels, e.g. 80000000 or 8e7).
MAX_PIXELS_ENV = "LUNGPRIOR_MAX_PIXELS"
#: The most elongated image accepted: one side at most this many times the other (films are near 1:1).
MAX_ASPECT = 20


def max_pixels() -> int:
    """The largest image (width x height) a reader decodes: `$LUNGPRIOR_MAX_PIXELS`, else 50 MP."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise LungpriorError(f"{MAX_PIXELS_ENV}={raw!r}: must be a positive number of pixels, e.g. 50000000")
    return value


def check_pixels(
    path: str | os.PathLike[str], width: int, height: int, frames: int = 1, *, aspect: bool = True
) -> None:
    """The one size gate for untrusted dimensions (image headers, CSV sizes), checked before anything is allocated.

    Raises `ImageReadError` naming `path` when a side is not positive, when one side is more than `MAX_ASPECT`
    times the other (a 16 x 20000 "film" would be resized to a side of 0 pixels; `aspect=False` for crops and
    other parts of a film), or when the size is over the pixel limit.
    """
    limit = max_pixels()
    w, h, n = int(width), int(height), max(int(frames), 1)
    size = f"{w}x{h}" + (f"x{n}" if n > 1 else "")
    if w < 1 or h < 1:
        raise ImageReadError(path, f"image size {size} pixels: a side is not positive")
    if aspect and max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageReadError(path, f"image size {size} pixels: one side is over {MAX_ASPECT} times the other, "
                             "not a film")
    total = w * h * n
    if total > limit:
        raise over_limit(path, f"{size} pixels ({total / 1e6:.1f} MP)", limit)


def over_limit(path: str | os.PathLike[str], size: str, limit: int) -> ImageReadError:
    """The one-line error for an image of `size` (e.g. "30000x30000 pixels") over `limit` pixels."""
    return ImageReadError(
        path, f"image is {size}, over the {limit / 1e6:g} MP limit "
        f"(a decompression bomb or a very large film; set {MAX_PIXELS_ENV} to raise the limit)",
    )
