"""ONVIF Media2 masks: round trips, a camera's own document, and refused input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from veil.config.onvif import (
    COLORSPACE_RGB,
    TR2,
    TT,
    masks_from_onvif_json,
    masks_from_onvif_xml,
    masks_to_onvif_json,
    masks_to_onvif_xml,
    ycbcr_to_rgb,
)
from veil.config.schema import MaskConfig, Units
from veil.core.errors import ConfigError
from veil.core.style import StyleKind

MASKS = [
    MaskConfig(name="door", rect=(0.1, 0.2, 0.3, 0.4), color="#ff8000"),
    MaskConfig(name="edge", rect=(0.7, 0.0, 0.3, 1.0)),
    MaskConfig(
        name="window 2",
        polygon=[(0.5, 0.5), (0.9, 0.5), (0.7, 0.9), (0.123457, 0.987654)],
        style=StyleKind.MOSAIC,
        enabled=False,
    ),
    MaskConfig(name="tri", polygon=[(0.0, 0.0), (1.0, 0.0), (0.5, 1.0)], style=StyleKind.BLUR),
]


def assert_same_masks(got: list[MaskConfig], want: list[MaskConfig]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.model_dump(exclude={"rect", "polygon"}) == w.model_dump(
            exclude={"rect", "polygon"}
        )
        if w.rect is not None:
            assert g.rect == pytest.approx(w.rect, abs=1e-6)
        else:
            assert g.polygon is not None
            assert w.polygon is not None
            assert [c for p in g.polygon for c in p] == pytest.approx(
                [c for p in w.polygon for c in p], abs=1e-6
            )


# --- Round trips ---------------------------------------------------------------------------


def test_xml_round_trip_keeps_every_mask() -> None:
    assert_same_masks(masks_from_onvif_xml(masks_to_onvif_xml(MASKS, "VSC_1")), MASKS)


def test_json_round_trip_keeps_every_mask() -> None:
    assert_same_masks(masks_from_onvif_json(masks_to_onvif_json(MASKS, "VSC_1")), MASKS)


def test_rectangles_come_back_as_rectangles_and_polygons_as_polygons() -> None:
    back = masks_from_onvif_xml(masks_to_onvif_xml(MASKS, "VSC_1"))
    assert [m.rect is not None for m in back] == [True, True, False, False]


def test_silhouette_exports_as_color_and_returns_as_fill() -> None:
    mask = MaskConfig(name="s", rect=(0, 0, 0.5, 0.5), style=StyleKind.SILHOUETTE, color="red")
    root = ET.fromstring(masks_to_onvif_xml([mask], "VSC_1"))
    assert root.findtext(f"{{{TR2}}}Masks/{{{TR2}}}Type") == "Color"
    (back,) = masks_from_onvif_xml(masks_to_onvif_xml([mask], "VSC_1"))
    assert (back.style, back.color) == (StyleKind.FILL, "#ff0000")


# --- What the export looks like ----------------------------------------------------------


def test_export_xml_follows_the_media2_schema() -> None:
    xml = masks_to_onvif_xml(MASKS[:1], "VSC_7")
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(xml)
    assert root.tag == f"{{{TR2}}}GetMasksResponse"
    (mask,) = list(root)
    assert mask.tag == f"{{{TR2}}}Masks"
    assert mask.get("token") == "door"
    # The xs:sequence order of tr2:Mask.
    assert [child.tag.split("}")[1] for child in mask] == [
        "ConfigurationToken",
        "Polygon",
        "Type",
        "Color",
        "Enabled",
    ]
    assert mask.findtext(f"{{{TR2}}}ConfigurationToken") == "VSC_7"
    coords = [
        float(p.get(axis, "nan"))
        for p in mask.iterfind(f"{{{TR2}}}Polygon/{{{TT}}}Point")
        for axis in "xy"
    ]
    # Veil (0.1, 0.2) top-left -> ONVIF x = 2 * 0.1 - 1, y = 1 - 2 * 0.2 (y points up).
    assert coords == pytest.approx([-0.8, 0.6, -0.2, 0.6, -0.2, -0.2, -0.8, -0.2])
    color = mask.find(f"{{{TR2}}}Color")
    assert color is not None
    assert color.attrib == {"X": "255", "Y": "128", "Z": "0", "Colorspace": COLORSPACE_RGB}
    assert mask.findtext(f"{{{TR2}}}Enabled") == "true"


def test_export_json_mirrors_the_xml_names() -> None:
    data = json.loads(masks_to_onvif_json(MASKS[2:3], "VSC_1"))
    (mask,) = data["Masks"]
    assert mask["token"] == "window 2"
    assert mask["ConfigurationToken"] == "VSC_1"
    assert mask["Type"] == "Pixelated"
    assert mask["Enabled"] is False
    assert mask["Polygon"]["Point"][0] == {"x": 0.0, "y": 0.0}
    assert mask["Color"] == {"X": 0, "Y": 0, "Z": 0, "Colorspace": COLORSPACE_RGB}


def test_corners_map_to_onvif_corners() -> None:
    mask = MaskConfig(name="all", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    data = json.loads(masks_to_onvif_json([mask], "t"))
    points = [(p["x"], p["y"]) for p in data["Masks"][0]["Polygon"]["Point"]]
    assert points == [(-1, 1), (1, 1), (1, -1), (-1, -1)]


def test_pixel_masks_need_a_resolution() -> None:
    mask = MaskConfig(name="px", units=Units.PIXELS, rect=(160, 120, 320, 240))
    with pytest.raises(ConfigError, match=r"'px' is in pixels.*--width"):
        masks_to_onvif_xml([mask], "VSC_1")
    (back,) = masks_from_onvif_xml(masks_to_onvif_xml([mask], "VSC_1", resolution=(640, 480)))
    assert back.units is Units.NORMALIZED
    assert back.rect == pytest.approx((0.25, 0.25, 0.5, 0.5))


def test_pixel_mask_outside_the_given_resolution_is_refused() -> None:
    mask = MaskConfig(name="px", units=Units.PIXELS, rect=(600, 0, 100, 100))
    with pytest.raises(ConfigError, match="reaches outside a 640 x 480 picture"):
        masks_to_onvif_json([mask], "VSC_1", resolution=(640, 480))


def test_empty_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="token is empty"):
        masks_to_onvif_xml(MASKS, " ")


# --- A camera's own document ---------------------------------------------------------------

CAMERA_RESPONSE = """<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
    xmlns:tt="http://www.onvif.org/ver10/schema"
    xmlns:ns2="http://www.onvif.org/ver20/media/wsdl">
  <SOAP-ENV:Header/>
  <SOAP-ENV:Body>
    <ns2:GetMasksResponse>
      <ns2:Masks token="00000">
        <ns2:ConfigurationToken>00000</ns2:ConfigurationToken>
        <ns2:Polygon>
          <tt:Point x="-0.853515625" y="0.853515625"/>
          <tt:Point x="-0.560546875" y="0.853515625"/>
          <tt:Point x="-0.560546875" y="0.560546875"/>
          <tt:Point x="-0.853515625" y="0.560546875"/>
        </ns2:Polygon>
        <ns2:Type>Pixelated</ns2:Type>
        <ns2:Enabled>true</ns2:Enabled>
      </ns2:Masks>
      <ns2:Masks token="Privacy Mask/2">
        <ns2:ConfigurationToken>00000</ns2:ConfigurationToken>
        <ns2:Polygon>
          <tt:Point x="0" y="0"/>
          <tt:Point x="0.5" y="-0.25"/>
          <tt:Point x="0.25" y="-1"/>
          <tt:Point x="-0.25" y="-0.5"/>
        </ns2:Polygon>
        <ns2:Type>Color</ns2:Type>
        <ns2:Color X="76" Y="85" Z="255"/>
        <ns2:Enabled>0</ns2:Enabled>
      </ns2:Masks>
      <ns2:Masks token="3">
        <ns2:ConfigurationToken>00000</ns2:ConfigurationToken>
        <ns2:Polygon>
          <tt:Point x="1" y="1"/>
          <tt:Point x="1" y="0.5"/>
          <tt:Point x="0.5" y="0.5"/>
          <tt:Point x="0.5" y="1"/>
        </ns2:Polygon>
        <ns2:Type>Blurred</ns2:Type>
        <ns2:Color X="0" Y="0" Z="255"
            Colorspace="http://www.onvif.org/ver10/colorspace/RGB"/>
        <ns2:Enabled>true</ns2:Enabled>
      </ns2:Masks>
    </ns2:GetMasksResponse>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"""


def test_a_camera_soap_response_imports() -> None:
    first, second, third = masks_from_onvif_xml(CAMERA_RESPONSE)

    assert first.name == "00000"
    assert first.style is StyleKind.MOSAIC
    assert first.enabled is True
    corner = (1 - 0.853515625) / 2
    size = (0.853515625 - 0.560546875) / 2
    assert first.rect == pytest.approx((corner, corner, size, size), abs=1e-7)

    # '/' is not allowed in a Veil name; the rest of the token is kept.
    assert second.name == "Privacy Mask_2"
    assert second.style is StyleKind.FILL
    assert second.enabled is False
    # No Colorspace: YCbCr, and (76, 85, 255) is BT.601 red.
    assert second.color == "#fe0000"
    assert second.polygon is not None
    assert [c for p in second.polygon for c in p] == pytest.approx(
        [0.5, 0.5, 0.75, 0.625, 0.625, 1.0, 0.375, 0.75]
    )

    # Corners in another order still make a rectangle: the top-right quarter.
    assert third.name == "3"
    assert third.style is StyleKind.BLUR
    assert third.color == "#0000ff"
    assert third.rect == pytest.approx((0.75, 0.0, 0.25, 0.25))


def test_a_single_mask_element_imports() -> None:
    xml = f"""<tr2:CreateMask xmlns:tr2="{TR2}" xmlns:tt="{TT}"><tr2:Mask>
      <tr2:ConfigurationToken>VSC</tr2:ConfigurationToken>
      <tr2:Polygon><tt:Point x="-1" y="1"/><tt:Point x="1" y="1"/><tt:Point x="0" y="0"/>
      </tr2:Polygon><tr2:Type>Color</tr2:Type><tr2:Enabled>true</tr2:Enabled>
    </tr2:Mask></tr2:CreateMask>"""
    (mask,) = masks_from_onvif_xml(xml.encode("utf-8"))
    # A mask being created has no token yet.
    assert mask.name == "mask-1"
    assert mask.polygon == [(0.0, 0.0), (1.0, 0.0), (0.5, 0.5)]
    assert mask.color == "#000000"


def test_an_empty_response_means_no_masks() -> None:
    assert masks_from_onvif_xml(f'<tr2:GetMasksResponse xmlns:tr2="{TR2}"/>') == []
    assert masks_from_onvif_json('{"Masks": []}') == []


@pytest.mark.parametrize(
    "document",
    [
        # camelCase keys (as generated clients write them), one mask without a wrapper.
        {
            "token": "m",
            "configurationToken": "VSC",
            "polygon": {"point": [{"x": -1, "y": 1}, {"x": 0, "y": 1}, {"x": 0, "y": 0}]},
            "type": "Blurred",
            "enabled": True,
        },
        # A bare list, points as a plain list, inside GetMasksResponse.
        {
            "GetMasksResponse": {
                "Masks": [
                    {
                        "token": "m",
                        "Polygon": [{"x": -1, "y": 1}, {"x": 0, "y": 1}, {"x": 0, "y": 0}],
                        "Type": "Blurred",
                        "Enabled": True,
                    }
                ]
            }
        },
    ],
)
def test_json_variants_import(document: object) -> None:
    (mask,) = masks_from_onvif_json(json.dumps(document))
    assert mask.name == "m"
    assert mask.style is StyleKind.BLUR
    assert mask.polygon == [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]


@pytest.mark.parametrize(
    ("ycbcr", "rgb"),
    [((255, 128, 128), (255, 255, 255)), ((0, 128, 128), (0, 0, 0)), ((128, 128, 128), (128,) * 3)],
)
def test_ycbcr_greys(ycbcr: tuple[int, int, int], rgb: tuple[int, int, int]) -> None:
    assert ycbcr_to_rgb(*ycbcr) == pytest.approx(rgb)


# --- Refused input -------------------------------------------------------------------------


def mask_xml(body: str, token: str = "m") -> str:
    return (
        f'<tr2:GetMasksResponse xmlns:tr2="{TR2}" xmlns:tt="{TT}">'
        f'<tr2:Masks token="{token}">{body}</tr2:Masks></tr2:GetMasksResponse>'
    )


TRIANGLE = (
    '<tr2:Polygon><tt:Point x="0" y="0"/><tt:Point x="1" y="0"/><tt:Point x="0" y="1"/>'
    "</tr2:Polygon>"
)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<a>\n<b></a>", r"<test>:2:\d+: not well-formed XML: mismatched tag"),
        ("\n\n<a>\n<b></a>", r"<test>:4:\d+: not well-formed XML: mismatched tag"),
        ("", "not well-formed XML"),
        ("<a><b/></a>", r"no ONVIF masks found \(the document's root is <a>\)"),
        (
            mask_xml(TRIANGLE + "<tr2:Type>Mosaic</tr2:Type>"),
            "mask 1 \\('m'\\): unknown mask Type 'Mosaic'",
        ),
        (
            mask_xml('<tr2:Polygon><tt:Point x="2" y="0"/></tr2:Polygon>'),
            r"point \(2.0, 0.0\) is outside ONVIF's -1..1 range",
        ),
        (
            mask_xml('<tr2:Polygon><tt:Point y="0"/></tr2:Polygon>'),
            "Point x must be a number, got nothing",
        ),
        (
            mask_xml('<tr2:Polygon><tt:Point x="a" y="0"/></tr2:Polygon>'),
            "Point x must be a number, got 'a'",
        ),
        (mask_xml('<tr2:Polygon><tt:Point x="nan" y="0"/></tr2:Polygon>'), "must be a number"),
        (
            mask_xml('<tr2:Polygon><tt:Point x="0" y="0"/><tt:Point x="1" y="1"/></tr2:Polygon>'),
            "polygon: a polygon needs 3 to 64 points, got 2",
        ),
        (mask_xml("<tr2:Type>Color</tr2:Type>"), r"mask 1 \('m'\): has no Polygon"),
        (
            mask_xml(TRIANGLE + "<tr2:Enabled>yes</tr2:Enabled>"),
            "Enabled must be true or false, got 'yes'",
        ),
        (
            mask_xml(TRIANGLE + '<tr2:Color X="1" Y="2" Z="3" Colorspace="urn:hsv"/>'),
            "unsupported Colorspace 'urn:hsv'",
        ),
        (
            mask_xml(TRIANGLE + '<tr2:Color X="300" Y="2" Z="3"/>'),
            "Color values must be within 0..255",
        ),
        (
            f'<r xmlns:tr2="{TR2}" xmlns:tt="{TT}"><tr2:Masks token="a">{TRIANGLE}</tr2:Masks>'
            f'<tr2:Masks token="a">{TRIANGLE}</tr2:Masks></r>',
            "masks 1 and 2 are both named 'a'",
        ),
    ],
)
def test_bad_xml_is_a_config_error(xml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        masks_from_onvif_xml(xml, "<test>")
    assert str(caught.value).startswith("<test>")
    assert caught.value.exit_code == 2


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<tr2:GetMasksResponse xmlns:tr2="http://www.onvif.org/ver20/media/wsdl">&lol3;
</tr2:GetMasksResponse>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<m>&secret;</m>"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        EXTERNAL_ENTITY.replace("DOCTYPE", "doctype"),
        BILLION_LAUGHS.encode("utf-16"),
        EXTERNAL_ENTITY.encode("utf-8"),
    ],
)
def test_doctype_and_entities_are_refused(document: str | bytes) -> None:
    with pytest.raises(ConfigError, match="DOCTYPE or ENTITY declaration is refused"):
        masks_from_onvif_xml(document)


def test_non_text_bytes_are_refused() -> None:
    with pytest.raises(ConfigError, match="not UTF-8 or UTF-16"):
        masks_from_onvif_xml(b"<a>\xff\xfe\xfa</a>")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Masks": [', r"<test>:1:12: not valid JSON"),
        ("42", "no ONVIF masks found"),
        ('{"Masks": ["x"]}', "mask 1 must be a JSON object"),
        ('{"Masks": [{"token": "m", "Polygon": {"Point": 3}}]}', "Polygon must hold a list"),
        ('{"Masks": [{"token": "m", "Polygon": [[0, 0]]}]}', "each Point must be"),
        ('{"Masks": [{"token": "m", "Color": "red"}]}', "Color must be"),
        ('{"Masks": [{"Polygon": [{"x": 0, "y": true}]}]}', "Point y must be a number, got True"),
    ],
)
def test_bad_json_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        masks_from_onvif_json(text, "<test>")


# --- Round trips of any mask (property-based) ----------------------------------------------

_unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_names = st.text(alphabet="abcXYZ019_.- ", min_size=1, max_size=64).filter(
    lambda n: n.strip() != ""
)


@st.composite
def _masks(draw: st.DrawFn) -> MaskConfig:
    style = draw(st.sampled_from([StyleKind.FILL, StyleKind.MOSAIC, StyleKind.BLUR]))
    color = "#" + "".join(draw(st.sampled_from("0123456789abcdef")) for _ in range(6))
    enabled = draw(st.booleans())
    if draw(st.booleans()):
        x, y = draw(_unit), draw(_unit)
        w = draw(st.floats(min_value=1e-3, max_value=1.0)) * (1 - x) or 1e-3
        h = draw(st.floats(min_value=1e-3, max_value=1.0)) * (1 - y) or 1e-3
        assume(x + w <= 1 and y + h <= 1)
        return MaskConfig(name="m", rect=(x, y, w, h), style=style, color=color, enabled=enabled)
    points = draw(st.lists(st.tuples(_unit, _unit), min_size=3, max_size=64))
    return MaskConfig(name="m", polygon=points, style=style, color=color, enabled=enabled)


def _outline(mask: MaskConfig) -> list[tuple[float, float]]:
    if mask.rect is not None:
        x, y, w, h = mask.rect
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    return list(mask.polygon or [])


@settings(max_examples=60, deadline=None)
@given(
    masks=st.lists(_masks(), min_size=1, max_size=5),
    names=st.lists(_names, min_size=5, max_size=5, unique=True),
    as_json=st.booleans(),
)
def test_any_masks_survive_an_onvif_round_trip(
    masks: list[MaskConfig], names: list[str], as_json: bool
) -> None:
    masks = [m.model_copy(update={"name": n}) for m, n in zip(masks, names, strict=False)]
    if as_json:
        back = masks_from_onvif_json(masks_to_onvif_json(masks, "VSC_1"))
    else:
        back = masks_from_onvif_xml(masks_to_onvif_xml(masks, "VSC_1"))
    assert len(back) == len(masks)
    for got, want in zip(back, masks, strict=True):
        assert (got.name, got.style, got.color, got.enabled) == (
            want.name,
            want.style,
            want.color,
            want.enabled,
        )
        got_points, want_points = _outline(got), _outline(want)
        if got.rect is not None and want.rect is None:
            # A four-point polygon that is an axis-aligned rectangle comes back as a rect,
            # whose corners may start elsewhere: compare the corners as a set.
            got_points, want_points = sorted(got_points), sorted(want_points)
        assert [c for p in got_points for c in p] == pytest.approx(
            [c for p in want_points for c in p], abs=1e-6
        )
