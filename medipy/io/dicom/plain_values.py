"""Plain Python values of simple string elements, decoded exactly as pydicom decodes them, ~10x cheaper.

pydicom converts a raw element through its hooks, a converter, a value class (``UID``, ``IS``, ``DSfloat``...)
and its validation: ~25 us per element, and ~20 us more for its DICOM JSON (``to_json_dict``). The engine's
scan meets a few such values in every file that no other file shares (SOP Instance UID, Image Position,
Instance Number, Slice Location...): converted by pydicom, they cost a third of the scan.

:func:`plain_value` decodes the well-formed cases of the string VRs of PS3.5 6.2 whose decoding does not
depend on anything but the bytes: ASCII values (the default repertoire; text VRs also free of the escape
sequences of ISO 2022), well-formed numbers for IS and DS, pydicom's default configuration. It gives the
value pydicom's element would hold, as plain ``str``, ``int`` or ``float`` (a list for several values), and
None for anything else, which is then left to pydicom: this is a shortcut for the common case, never a
second decoder with its own rules. Tests compare it with pydicom over pydicom's own test files.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom import config
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement

__all__ = ["plain_value", "plain_values_enabled", "public_vr", "raw_plain_value", "transfer_syntax_of"]

# VR -> how pydicom splits and strips it (values.py: multi_string, convert_AE_string, convert_text,
# convert_single_string, convert_DS_string, convert_IS_string, convert_UI)
_SPLIT_STRIPPED = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # rstrip(" \0") of the whole, then split
_TEXT_MULTI = frozenset({"LO", "SH", "UC"})  # split, then rstrip("\0 ") of each value (character set)
_TEXT_SINGLE = frozenset({"LT", "ST", "UT"})  # never split, rstrip("\0 ") (character set)
PLAIN_VRS = _SPLIT_STRIPPED | _TEXT_MULTI | _TEXT_SINGLE | {"AE", "DS", "IS"}

_IS = re.compile(r" *[+-]?[0-9]{1,10} *")
_DS = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})? *")
_INT32 = 2**31


def plain_values_enabled() -> bool:
    """True when pydicom's configuration is the one :func:`plain_value` reproduces.

    Dates and times kept as strings, DS and IS as pydicom's classes (not numpy nor Decimal), and values not
    refused on reading (pydicom's default WARN mode: a RAISE mode would turn invalid values into errors).
    """
    return not (config.datetime_conversion or config.use_DS_numpy or config.use_IS_numpy
                or config.use_DS_decimal or config.settings.reading_validation_mode == config.RAISE)


def public_vr(tag: int, vr: str | None) -> str | None:
    """The VR of a public element of pydicom's dictionary (with a keyword) when ``vr`` (the explicit VR read, or
    None for implicit VR) is that VR and it is one :func:`plain_value` decodes, else None."""
    entry = DicomDictionary.get(tag)
    if entry is None or not entry[4]:  # unknown, or without a keyword (pydicom's JSON skips those)
        return None
    known = entry[0]
    if known not in PLAIN_VRS or vr is not None and vr != known:
        return None
    return known


def plain_value(vr: str, data: bytes) -> Any:
    """The value pydicom gives an element of VR ``vr`` (see :func:`public_vr`) holding ``data``, when simple.

    Parameters
    ----------
    vr
        One of the string VRs handled here (:data:`PLAIN_VRS`).
    data
        The raw value bytes (not empty).

    Returns
    -------
    str, int, float, list or None
        One value as ``str`` (``int`` for IS, ``float`` for DS), several as a list of them; None when the bytes
        are not plain ASCII, hold an escape sequence in a text VR, an empty or malformed number, or decode
        to no value at all: pydicom is left to decode those.
    """
    if not data or not data.isascii():
        return None
    text = data.decode("ascii")
    if vr in _SPLIT_STRIPPED:
        values = text.rstrip(" \0").split("\\")
    elif vr in _TEXT_MULTI:
        if "\x1b" in text:
            return None
        values = [v.rstrip("\0 ") for v in text.split("\\")]
    elif vr in _TEXT_SINGLE:
        if "\x1b" in text:
            return None
        values = [text.rstrip("\0 ")]
    elif vr == "AE":
        values = [v.strip() for v in text.split("\\")]
    elif vr == "IS":
        parts = text.rstrip(" \0").split("\\")
        if not all(_IS.fullmatch(p) for p in parts):
            return None
        numbers = [int(p) for p in parts]
        if not all(-_INT32 <= n < _INT32 for n in numbers):
            return None
        return numbers[0] if len(numbers) == 1 else numbers
    elif vr == "DS":
        parts = text.strip().rstrip(" \0").split("\\")
        if not all(_DS.fullmatch(p) for p in parts):
            return None
        floats = [float(p) for p in parts]
        return floats[0] if len(floats) == 1 else floats
    else:
        return None
    if len(values) == 1:
        return values[0] or None  # an empty value: pydicom's own empty value
    return values


def raw_plain_value(tag: int, raw: Any) -> Any:
    """The plain value of a loaded raw element (pydicom's ``RawDataElement``) of tag ``tag``, or None when
    :func:`public_vr` or :func:`plain_value` leaves it to pydicom (deferred and empty values included)."""
    if not raw.value:
        return None
    vr = public_vr(tag, raw.VR)
    return None if vr is None else plain_value(vr, raw.value)


_TRANSFER_SYNTAX_UID = 0x00020010


def transfer_syntax_of(ds: Any) -> str | None:
    """The Transfer Syntax UID (0002,0010) of the File Meta of ``ds`` as a plain ``str``, or None without one.

    Read from the raw bytes when pydicom has not converted the element yet (a parse leaves File Meta raw):
    pydicom's conversion of a UID costs ~40 us, a tenth of the parse of a usual header. Whatever
    :func:`raw_plain_value` leaves (empty, not ASCII, several values) is pydicom's value, as ``str``.
    """
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is None:
        return None
    element = file_meta._dict.get(_TRANSFER_SYNTAX_UID)  # BaseTag keys hash and compare as int
    if element is None:
        return None
    if type(element) is RawDataElement and type(value := raw_plain_value(_TRANSFER_SYNTAX_UID, element)) is str:
        return value
    value = file_meta[_TRANSFER_SYNTAX_UID].value
    return None if value is None else str(value)
