"""Colour parsing: ``#rrggbb``, ``#rgb``, ``r,g,b`` and CSS names."""

from __future__ import annotations

from veil.core.style import BGR

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "darkgray": (64, 64, 64),
    "silver": (192, 192, 192),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "navy": (0, 0, 128),
    "yellow": (255, 255, 0),
    "orange": (255, 165, 0),
    "magenta": (255, 0, 255),
    "fuchsia": (255, 0, 255),
    "cyan": (0, 255, 255),
    "aqua": (0, 255, 255),
    "purple": (128, 0, 128),
    "teal": (0, 128, 128),
    "maroon": (128, 0, 0),
    "olive": (128, 128, 0),
    "pink": (255, 192, 203),
    "brown": (165, 42, 42),
}
"""Named colours as RGB (CSS names)."""


def parse_color_rgb(text: str) -> tuple[int, int, int]:
    """Parse a colour to RGB. Raises ValueError naming the accepted forms."""
    value = text.strip().lower()
    if value in NAMED_COLORS:
        return NAMED_COLORS[value]
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        if len(digits) == 6:
            try:
                return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
            except ValueError:
                pass
    elif value.count(",") == 2:
        try:
            parts = tuple(int(p) for p in value.split(","))
        except ValueError:
            parts = ()
        if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
            return parts[0], parts[1], parts[2]
    raise ValueError(
        f"unknown colour {text!r}: use #rrggbb (for example #ff00ff), #rgb, "
        f"'r,g,b' with values 0-255, or a name such as {', '.join(sorted(NAMED_COLORS)[:6])}"
    )


def rgb_to_bgr(rgb: tuple[int, int, int]) -> BGR:
    return (rgb[2], rgb[1], rgb[0])


def rgb_to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
