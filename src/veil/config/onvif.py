"""Privacy masks in ONVIF Media2 form, so masks move between Veil and cameras or VMSs.

The ONVIF Media2 service (``ver20/media/wsdl``, prefix ``tr2``) describes a mask as::

    <tr2:Masks token="Mask_1">                      (tr2:Mask; token is its name)
      <tr2:ConfigurationToken>VSC_1</tr2:ConfigurationToken>
      <tr2:Polygon>                                  (tt:Polygon)
        <tt:Point x="-0.5" y="0.5"/> ...             (tt:Vector, x and y in -1..1)
      </tr2:Polygon>
      <tr2:Type>Color</tr2:Type>                     (Color | Pixelated | Blurred)
      <tr2:Color X="255" Y="0" Z="0"
                 Colorspace="http://www.onvif.org/ver10/colorspace/RGB"/>
      <tr2:Enabled>true</tr2:Enabled>
    </tr2:Masks>

Conversions (each is the exact inverse of the other, up to the 6 decimals written):

- Coordinates: ONVIF's x runs -1..1 left to right and y -1..1 *bottom to top*; Veil's
  are 0..1 from the top-left corner. ``x = (X + 1) / 2``, ``y = (1 - Y) / 2``.
- Type: Color -> fill, Pixelated -> mosaic, Blurred -> blur. Veil's silhouette is a
  flat fill for static masks and is exported as Color.
- Colour: tt:Color without a Colorspace is YCbCr (BT.601 full range, 0..255 as cameras
  use it); the RGB colourspace is read as is. Veil exports RGB with the Colorspace set.
- ONVIF has no place for a mosaic cell size or a blur radius: export drops them and
  import uses Veil's defaults (which are privacy-grade).
- An axis-aligned four-point polygon imports as a ``rect``, so rectangles survive a
  round trip as rectangles.

The JSON form mirrors the same element and attribute names (``{"Masks": [{"token": ...,
"ConfigurationToken": ..., "Polygon": {"Point": [{"x": ..., "y": ...}]}, "Type": ...,
"Color": {"X": ..., "Y": ..., "Z": ..., "Colorspace": ...}, "Enabled": true}]}``).
"""

from __future__ import annotations

import codecs
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from veil.config.colors import parse_color_rgb
from veil.config.loader import format_path
from veil.config.schema import MaskConfig, Units
from veil.core.errors import ConfigError
from veil.core.style import StyleKind

TR2 = "http://www.onvif.org/ver20/media/wsdl"
TT = "http://www.onvif.org/ver10/schema"
COLORSPACE_RGB = "http://www.onvif.org/ver10/colorspace/RGB"
COLORSPACE_YCBCR = "http://www.onvif.org/ver10/colorspace/YCbCr"

# ElementTree keeps one process-wide prefix table; these are the prefixes the ONVIF
# specification itself uses, so documents we write read like the standard's examples.
ET.register_namespace("tr2", TR2)
ET.register_namespace("tt", TT)

DEFAULT_CONFIGURATION_TOKEN = "VideoSourceConfig"
"""Used when no token is given; cameras name theirs in GetVideoSourceConfigurations."""

_TYPE_TO_STYLE = {"Color": StyleKind.FILL, "Pixelated": StyleKind.MOSAIC, "Blurred": StyleKind.BLUR}
_STYLE_TO_TYPE = {
    StyleKind.FILL: "Color",
    StyleKind.SILHOUETTE: "Color",
    StyleKind.MOSAIC: "Pixelated",
    StyleKind.BLUR: "Blurred",
}

_DECIMALS = 6
"""Coordinates are written with 6 decimals: 1/1000 of a pixel even at 8K."""
_EDGE_TOLERANCE = 1e-6
"""Coordinates this far past -1..1 are rounding and are clamped, not refused."""
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\- ]")


@dataclass(frozen=True, slots=True)
class _OnvifMask:
    """One mask as read from ONVIF, before it becomes a MaskConfig."""

    token: str | None
    points: list[tuple[float, float]]
    type: str | None
    color: tuple[float, float, float] | None
    colorspace: str | None
    enabled: bool | None


# --- Export ------------------------------------------------------------------------------


def masks_to_onvif_xml(
    masks: Sequence[MaskConfig],
    configuration_token: str = DEFAULT_CONFIGURATION_TOKEN,
    *,
    resolution: tuple[int, int] | None = None,
) -> str:
    """The masks as a ``tr2:GetMasksResponse`` document, one ``tr2:Masks`` per mask.

    ``resolution`` (width, height) is needed only for masks in pixel units.
    """
    root = ET.Element(f"{{{TR2}}}GetMasksResponse")
    for item in _export(masks, configuration_token, resolution):
        mask = ET.SubElement(root, f"{{{TR2}}}Masks", {"token": item["token"]})
        ET.SubElement(mask, f"{{{TR2}}}ConfigurationToken").text = item["ConfigurationToken"]
        polygon = ET.SubElement(mask, f"{{{TR2}}}Polygon")
        for point in item["Polygon"]["Point"]:
            ET.SubElement(
                polygon,
                f"{{{TT}}}Point",
                {"x": _number(point["x"]), "y": _number(point["y"])},
            )
        ET.SubElement(mask, f"{{{TR2}}}Type").text = item["Type"]
        color = item["Color"]
        ET.SubElement(
            mask,
            f"{{{TR2}}}Color",
            {
                "X": _number(color["X"]),
                "Y": _number(color["Y"]),
                "Z": _number(color["Z"]),
                "Colorspace": color["Colorspace"],
            },
        )
        ET.SubElement(mask, f"{{{TR2}}}Enabled").text = "true" if item["Enabled"] else "false"
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def masks_to_onvif_json(
    masks: Sequence[MaskConfig],
    configuration_token: str = DEFAULT_CONFIGURATION_TOKEN,
    *,
    resolution: tuple[int, int] | None = None,
) -> str:
    """The masks as JSON with the ONVIF element names: ``{"Masks": [...]}``."""
    return json.dumps({"Masks": _export(masks, configuration_token, resolution)}, indent=2) + "\n"


def _export(
    masks: Sequence[MaskConfig], token: str, resolution: tuple[int, int] | None
) -> list[dict[str, Any]]:
    if not token.strip():
        raise ConfigError(
            "the ONVIF configuration token is empty",
            hint="give the camera's video source configuration token, e.g. --token VSC_1",
        )
    if resolution is not None and (resolution[0] <= 0 or resolution[1] <= 0):
        raise ConfigError(f"resolution must be positive, got {resolution[0]} x {resolution[1]}")
    out: list[dict[str, Any]] = []
    for mask in masks:
        r, g, b = parse_color_rgb(mask.color)
        out.append(
            {
                "token": mask.name,
                "ConfigurationToken": token,
                "Polygon": {
                    "Point": [
                        {"x": round(2 * x - 1, _DECIMALS), "y": round(1 - 2 * y, _DECIMALS)}
                        for x, y in _normalised_points(mask, resolution)
                    ]
                },
                "Type": _STYLE_TO_TYPE[mask.style],
                "Color": {"X": r, "Y": g, "Z": b, "Colorspace": COLORSPACE_RGB},
                "Enabled": mask.enabled,
            }
        )
    return out


def _normalised_points(
    mask: MaskConfig, resolution: tuple[int, int] | None
) -> list[tuple[float, float]]:
    if mask.rect is not None:
        x, y, w, h = mask.rect
        points = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    else:
        points = list(mask.polygon or [])
    if mask.units is Units.PIXELS:
        if resolution is None:
            raise ConfigError(
                f"mask {mask.name!r} is in pixels and ONVIF masks are not",
                hint="give the picture's size, e.g. --width 1920 --height 1080",
            )
        width, height = resolution
        points = [(px / width, py / height) for px, py in points]
        outside = [v for p in points for v in p if not 0.0 <= v <= 1.0]
        if outside:
            raise ConfigError(
                f"mask {mask.name!r} reaches outside a {width} x {height} picture",
                hint="check --width and --height against the camera's resolution",
            )
    return points


def _number(value: float) -> str:
    text = f"{value:.{_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


# --- Import ------------------------------------------------------------------------------


def masks_from_onvif_xml(xml: str | bytes, source_name: str = "<onvif xml>") -> list[MaskConfig]:
    """Masks from ONVIF XML: a SOAP envelope or a ``tr2:GetMasksResponse`` with
    ``tr2:Masks`` elements, a ``CreateMask``/``SetMask`` request, or a single
    ``tr2:Mask``. Elements are matched by local name, so any namespace prefix works.

    Documents with a DOCTYPE are refused: masks never need one, and refusing it rules
    out entity expansion attacks (billion laughs, external entities).
    """
    # Parsed as text, decoded here, so the DOCTYPE check below sees exactly what expat
    # sees (a UTF-16 document would otherwise slip past a check on UTF-8 bytes).
    text = _decode(xml, source_name) if isinstance(xml, bytes) else xml
    if re.search(r"<!DOCTYPE|<!ENTITY", text, re.IGNORECASE):
        raise ConfigError(
            "XML with a DOCTYPE or ENTITY declaration is refused",
            location=source_name,
            hint="ONVIF mask documents need no DOCTYPE: remove it",
        )
    # Leading blank lines (a pasted document) would put the XML declaration out of place.
    body = text.lstrip()
    skipped_lines = text[: len(text) - len(body)].count("\n")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        line, column = error.position
        line += skipped_lines
        raise ConfigError(
            f"not well-formed XML: {_parse_problem(error)}",
            location=f"{source_name}:{line}:{column + 1}",
            hint="check that every tag is closed and attributes are quoted",
        ) from None
    elements = [e for e in root.iter() if _local(e.tag) in {"Masks", "Mask"}]
    if not elements:
        if any(_local(e.tag) == "GetMasksResponse" for e in root.iter()):
            return []  # A camera with no masks answers with an empty response.
        raise ConfigError(
            f"no ONVIF masks found (the document's root is <{_local(root.tag)}>)",
            location=source_name,
            hint="expected tr2:GetMasksResponse with tr2:Masks elements, or a tr2:Mask",
        )
    return _to_configs(
        [_read_xml_mask(e, i, source_name) for i, e in enumerate(elements)], source_name
    )


def masks_from_onvif_json(text: str | bytes, source_name: str = "<onvif json>") -> list[MaskConfig]:
    """Masks from the JSON form: ``{"Masks": [...]}`` (also ``GetMasksResponse``
    wrapping it), a list of masks, or one mask. Keys match case-insensitively, so
    ``configurationToken`` and ``ConfigurationToken`` both work.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"not valid JSON: {error.msg}",
            location=f"{source_name}:{error.lineno}:{error.colno}",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            "the document is not UTF-8 text", location=source_name, hint="save it as UTF-8"
        ) from None
    items = _json_mask_list(data)
    if items is None:
        raise ConfigError(
            "no ONVIF masks found",
            location=source_name,
            hint='expected {"Masks": [...]}, a list of masks, or one mask with "Polygon"',
        )
    return _to_configs(
        [_read_json_mask(m, i, source_name) for i, m in enumerate(items)], source_name
    )


def _decode(data: bytes, source_name: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            "the document is not UTF-8 or UTF-16 text",
            location=f"{source_name}:{line}",
            hint="save it as UTF-8",
        ) from None


def _json_mask_list(data: object) -> list[object] | None:
    if isinstance(data, list):
        return list(data)
    if not isinstance(data, Mapping):
        return None
    for key in ("GetMasksResponse", "Masks", "Mask"):
        value = _get(data, key)
        if value is not None:
            if key == "GetMasksResponse":
                return _json_mask_list(value)
            return list(value) if isinstance(value, list) else [value]
    if _get(data, "Polygon") is not None:
        return [data]
    if any(k.lower() == "masks" for k in data):
        return []
    return None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _parse_problem(error: ET.ParseError) -> str:
    # "mismatched tag: line 3, column 2": the position is already in the location.
    return re.sub(r":\s*line \d+, column \d+$", "", str(error))


def _where(index: int, token: str | None) -> str:
    return f"mask {index + 1}" + (f" ({token!r})" if token else "")


def _read_xml_mask(element: ET.Element, index: int, source: str) -> _OnvifMask:
    token = element.get("token") or None
    where = _where(index, token)
    polygon = _child(element, "Polygon")
    points: list[tuple[float, float]] = []
    if polygon is not None:
        for point in polygon:
            if _local(point.tag) == "Point":
                points.append(
                    (
                        _float(point.get("x"), f"{where}: Point x", source),
                        _float(point.get("y"), f"{where}: Point y", source),
                    )
                )
    kind = _child(element, "Type")
    color_element = _child(element, "Color")
    color = None
    colorspace = None
    if color_element is not None:
        color = (
            _float(color_element.get("X"), f"{where}: Color X", source),
            _float(color_element.get("Y"), f"{where}: Color Y", source),
            _float(color_element.get("Z"), f"{where}: Color Z", source),
        )
        colorspace = color_element.get("Colorspace")
    enabled = _child(element, "Enabled")
    return _OnvifMask(
        token=token,
        points=points,
        type=(kind.text or "").strip() if kind is not None else None,
        color=color,
        colorspace=colorspace,
        enabled=_bool(enabled.text, where, source) if enabled is not None else None,
    )


def _read_json_mask(item: object, index: int, source: str) -> _OnvifMask:
    if not isinstance(item, Mapping):
        raise ConfigError(f"mask {index + 1} must be a JSON object", location=source)
    raw_token = _get(item, "token")
    token = str(raw_token) if raw_token not in (None, "") else None
    where = _where(index, token)
    polygon = _get(item, "Polygon")
    raw_points = _get(polygon, "Point") if isinstance(polygon, Mapping) else polygon
    if raw_points is None:
        raw_points = []
    if not isinstance(raw_points, list):
        raise ConfigError(f"{where}: Polygon must hold a list of points", location=source)
    points = []
    for point in raw_points:
        if not isinstance(point, Mapping):
            raise ConfigError(
                f"{where}: each Point must be {{'x': ..., 'y': ...}}", location=source
            )
        points.append(
            (
                _float(_get(point, "x"), f"{where}: Point x", source),
                _float(_get(point, "y"), f"{where}: Point y", source),
            )
        )
    raw_color = _get(item, "Color")
    color = None
    colorspace = None
    if isinstance(raw_color, Mapping):
        color = (
            _float(_get(raw_color, "X"), f"{where}: Color X", source),
            _float(_get(raw_color, "Y"), f"{where}: Color Y", source),
            _float(_get(raw_color, "Z"), f"{where}: Color Z", source),
        )
        space = _get(raw_color, "Colorspace")
        colorspace = str(space) if space is not None else None
    elif raw_color is not None:
        raise ConfigError(f"{where}: Color must be {{'X', 'Y', 'Z'}}", location=source)
    kind = _get(item, "Type")
    enabled = _get(item, "Enabled")
    return _OnvifMask(
        token=token,
        points=points,
        type=str(kind).strip() if kind is not None else None,
        color=color,
        colorspace=colorspace,
        enabled=None if enabled is None else _bool(enabled, where, source),
    )


def _get(data: object, key: str) -> Any:
    """A key of a JSON object, matched without regard to case (both bindings exist)."""
    if not isinstance(data, Mapping):
        return None
    if key in data:
        return data[key]
    lowered = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None


def _float(value: object, what: str, source: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        shown = "nothing" if value is None else repr(value)
        raise ConfigError(f"{what} must be a number, got {shown}", location=source)
    return number


def _bool(value: object, where: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    # xs:boolean allows exactly these four spellings.
    if text in {"true", "1"}:
        return True
    if text in {"false", "0"}:
        return False
    raise ConfigError(f"{where}: Enabled must be true or false, got {value!r}", location=source)


def _to_configs(items: Iterable[_OnvifMask], source: str) -> list[MaskConfig]:
    masks: list[MaskConfig] = []
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        name = _name(item.token, index)
        where = _where(index, item.token)
        if name in names:
            raise ConfigError(
                f"{where}: masks {names[name] + 1} and {index + 1} are both named {name!r}",
                location=source,
                hint="ONVIF tokens of one document must be unique",
            )
        names[name] = index
        data: dict[str, Any] = {"name": name, "style": _style(item.type, where, source)}
        if item.enabled is not None:
            # A missing Enabled (it is required by the schema) draws the mask: safer.
            data["enabled"] = item.enabled
        if item.color is not None:
            data["color"] = _color_hex(item.color, item.colorspace, where, source)
        if not item.points:
            raise ConfigError(
                f"{where}: has no Polygon points", location=source, hint="a mask needs 3 or more"
            )
        points = [_to_veil(x, y, where, source) for x, y in item.points]
        rect = _as_rect(points)
        if rect is not None:
            data["rect"] = rect
        else:
            data["polygon"] = points
        try:
            masks.append(MaskConfig.model_validate(data))
        except ValidationError as error:
            detail = error.errors(include_url=False)[0]
            ctx = detail.get("ctx") or {}
            message = str(ctx.get("error", detail["msg"]))
            field = format_path(tuple(detail["loc"]))
            raise ConfigError(
                f"{where}: {field + ': ' if field else ''}{message}", location=source
            ) from None
    return masks


def _name(token: str | None, index: int) -> str:
    """The ONVIF token as a Veil mask name (same 64-character limit, fewer characters)."""
    if not token:
        return f"mask-{index + 1}"
    name = _NAME_CHARS.sub("_", token)[:64]
    return name or f"mask-{index + 1}"


def _style(kind: str | None, where: str, source: str) -> StyleKind:
    if kind is None or kind == "":
        return StyleKind.FILL  # Type is required; a solid fill hides the most if it is absent.
    for onvif_type, style in _TYPE_TO_STYLE.items():
        if kind.lower() == onvif_type.lower():
            return style
    raise ConfigError(
        f"{where}: unknown mask Type {kind!r}",
        location=source,
        hint="ONVIF defines Color, Pixelated and Blurred",
    )


def _to_veil(x: float, y: float, where: str, source: str) -> tuple[float, float]:
    if not (-1 - _EDGE_TOLERANCE <= x <= 1 + _EDGE_TOLERANCE) or not (
        -1 - _EDGE_TOLERANCE <= y <= 1 + _EDGE_TOLERANCE
    ):
        raise ConfigError(
            f"{where}: point ({x}, {y}) is outside ONVIF's -1..1 range",
            location=source,
            hint="ONVIF mask points are normalised: x and y from -1 to 1",
        )
    vx = min(max((x + 1) / 2, 0.0), 1.0)
    vy = min(max((1 - y) / 2, 0.0), 1.0)
    return round(vx, _DECIMALS + 1), round(vy, _DECIMALS + 1)


def _as_rect(points: list[tuple[float, float]]) -> tuple[float, float, float, float] | None:
    """x, y, w, h when the four points are the corners of an axis-aligned rectangle,
    visited in order around it (not a bow tie); else None."""
    if len(points) != 4:
        return None
    xs = sorted({p[0] for p in points})
    ys = sorted({p[1] for p in points})
    if len(xs) != 2 or len(ys) != 2 or len(set(points)) != 4:
        return None
    for a, b in zip(points, points[1:] + points[:1], strict=True):
        if (a[0] == b[0]) == (a[1] == b[1]):
            return None  # A diagonal step: the corners are not visited around the edge.
    # Rounded like the points themselves, so 0.7 + 0.3 does not become 0.30000000000000004.
    return xs[0], ys[0], round(xs[1] - xs[0], _DECIMALS + 1), round(ys[1] - ys[0], _DECIMALS + 1)


def _color_hex(
    color: tuple[float, float, float], colorspace: str | None, where: str, source: str
) -> str:
    space = (colorspace or COLORSPACE_YCBCR).strip()
    if any(not -0.5 <= c <= 255.5 for c in color):
        raise ConfigError(
            f"{where}: Color values must be within 0..255, got {list(color)}",
            location=source,
        )
    if space.lower() == COLORSPACE_RGB.lower():
        rgb = color
    elif space.lower() == COLORSPACE_YCBCR.lower():
        rgb = ycbcr_to_rgb(*color)
    else:
        raise ConfigError(
            f"{where}: unsupported Colorspace {space!r}",
            location=source,
            hint=f"Veil reads {COLORSPACE_RGB} and {COLORSPACE_YCBCR}",
        )
    r, g, b = (min(max(round(c), 0), 255) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def ycbcr_to_rgb(y: float, cb: float, cr: float) -> tuple[float, float, float]:
    """BT.601 full-range YCbCr (as JPEG and most cameras' OSD palettes) to RGB, 0..255."""
    return (
        y + 1.402 * (cr - 128),
        y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
        y + 1.772 * (cb - 128),
    )
