"""Safe, deterministic path components made from DICOM attribute values.

A value read from a file (Patient ID, a UID, a Series Description) is hostile until proven otherwise: it may
hold ``../``, ``/etc/passwd``, NUL, a Windows device name or 300 characters. :func:`safe_component` turns any
value into one path component that cannot leave its folder: only characters of the policy's alphabet, no
leading dot or dash, never empty, never ``.`` or ``..``, bounded length. A value that had to be altered
(characters replaced, case changed, truncated, reserved name) gets a short hash of the *original* value as a
suffix, so that two different values rarely share a name, and the same value always gives the same name.

:func:`assign_names` resolves the remaining collisions (two different keys, one name, compared without case,
as on case-insensitive file systems) deterministically: the keys are processed in sorted order and a later
key gets a salted hash instead.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from medipy.errors import ConfigError

__all__ = ["NamingPolicy", "assign_names", "safe_component", "tree_names"]

_INVALID = {
    "portable": re.compile(r"[^A-Za-z0-9._-]"),
    "dicom": re.compile(r"[^A-Z0-9_]"),
}
_DROPPED = re.compile(r"[\x00-\x1f\x7f/\\]")  # control characters (NUL included) and path separators
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "DICOMDIR"} | {f"{p}{i}" for p in ("COM", "LPT")
                                                                  for i in range(10)})


@dataclass(frozen=True)
class NamingPolicy:
    """How path components are made from attribute values.

    Parameters
    ----------
    alphabet
        ``"dicom"``: upper-case letters, digits and ``_`` (the characters PS3.10 8.5 allows in a File ID, so
        that a DICOMDIR can reference the tree); ``"portable"``: ``[A-Za-z0-9._-]``.
    max_length
        The longest component (PS3.10 allows 8 characters in a File ID component).
    hash_length
        Characters of the hash suffix added to an altered or truncated value (base32 of SHA-256).
    folders
        ``"uid"``: study and series folders are named from Study/Series Instance UID; ``"description"``:
        from Study ID + Study Description and Series Number + Series Description (the UIDs still decide which
        instances share a folder).
    extension
        Appended to instance file names (must be empty with the ``"dicom"`` alphabet).

    Raises
    ------
    ConfigError
        Inconsistent values (e.g. ``hash_length >= max_length``, an extension with the dicom alphabet).
    """

    alphabet: Literal["dicom", "portable"] = "dicom"
    max_length: int = 8
    hash_length: int = 4
    folders: Literal["uid", "description"] = "description"
    extension: str = ""

    def __post_init__(self) -> None:
        if self.alphabet not in _INVALID:
            raise ConfigError(f"NamingPolicy.alphabet must be 'dicom' or 'portable', not {self.alphabet!r}")
        if self.folders not in ("uid", "description"):
            raise ConfigError(f"NamingPolicy.folders must be 'uid' or 'description', not {self.folders!r}")
        if not 1 <= self.hash_length < self.max_length:
            raise ConfigError(f"NamingPolicy: hash_length ({self.hash_length}) must be at least 1 and less "
                              f"than max_length ({self.max_length})")
        if self.extension and (self.alphabet == "dicom" or _INVALID["portable"].search(self.extension)):
            raise ConfigError(f"NamingPolicy.extension {self.extension!r}: only allowed with the portable "
                              "alphabet, and made of [A-Za-z0-9._-]")

    @classmethod
    def readable(cls) -> NamingPolicy:
        """Human-readable names: portable alphabet, 64 characters, ``.dcm`` files (no DICOMDIR possible)."""
        return cls(alphabet="portable", max_length=64, hash_length=8, folders="description", extension=".dcm")

    @property
    def dicom_conformant(self) -> bool:
        """True if every component is a valid PS3.10 File ID component (a DICOMDIR can reference it)."""
        return self.alphabet == "dicom" and self.max_length <= 8 and not self.extension


def _digest(value: str, salt: int, length: int) -> str:
    data = value.encode("utf-8", "surrogatepass") + (b"" if not salt else b"\x00%d" % salt)
    return base64.b32encode(hashlib.sha256(data).digest()).decode("ascii")[:length]


def safe_component(value: object, policy: NamingPolicy, *, fallback: str = "UNKNOWN", salt: int = 0) -> str:
    """One safe path component made from ``value``.

    Parameters
    ----------
    value
        The attribute value (converted with ``str``; None and empty values give ``fallback``).
    policy
        The alphabet and lengths.
    fallback
        The name of an empty value (it must be valid for the policy).
    salt
        Non-zero to get another hashed name for the same value (collision resolution).

    Returns
    -------
    str
        A name of 1 to ``policy.max_length`` characters of the policy's alphabet, not starting with ``.`` or
        ``-``, not a reserved device name; the same for the same arguments.

    Examples
    --------
    >>> safe_component("../etc/passwd", NamingPolicy.readable())
    'etcpasswd_P7XXR5JU'
    >>> safe_component("12345", NamingPolicy())
    '12345'
    """
    text = "" if value is None else str(value).strip()
    if not text:
        text = fallback
    name = _DROPPED.sub("", text)
    if policy.alphabet == "dicom":
        name = name.upper()
    name = _INVALID[policy.alphabet].sub("_", name)
    name = re.sub(r"_{2,}", "_", name).lstrip(".-_")
    altered = (name != text or salt != 0 or len(name) > policy.max_length or not name
               or name.split(".")[0].upper() in _RESERVED)
    if not altered:
        return name
    separator = "_" if policy.alphabet == "portable" else ""
    keep = policy.max_length - policy.hash_length - len(separator)
    prefix = name[:keep].rstrip("._-")
    digest = _digest(text, salt, policy.hash_length)
    return f"{prefix}{separator}{digest}" if prefix else digest


def assign_names(keys: Iterable[tuple[str, object]], policy: NamingPolicy, *,
                 fallback: str = "UNKNOWN", suffix: str = "") -> dict[str, str]:
    """Unique names for the keys of one folder, resolving collisions deterministically.

    Parameters
    ----------
    keys
        ``(key, value)`` pairs: ``key`` identifies the entry (e.g. a Series Instance UID), ``value`` is what its
        name is made from (e.g. the UID itself, or "3 T1 MPRAGE"). A key given twice keeps its first value.
    policy
        The naming policy.
    fallback
        The name of an empty value.
    suffix
        Appended to every name (a file extension), within ``policy.max_length``; names are compared with it,
        without case.

    Returns
    -------
    dict
        ``key -> name``; no two keys share a name, even without case. Keys are processed in sorted order, so
        the result depends only on the set of pairs, not on their order.
    """
    if suffix:  # the whole name, suffix included, stays within max_length
        policy = replace(policy, max_length=policy.max_length - len(suffix))
    values: dict[str, object] = {}
    for key, value in keys:
        values.setdefault(key, value)
    names: dict[str, str] = {}
    used: set[str] = set()
    for key in sorted(values):
        salt = 0
        name = safe_component(values[key], policy, fallback=fallback)
        while (name + suffix).casefold() in used:
            salt += 1
            name = safe_component(values[key], policy, fallback=fallback, salt=salt)
        used.add((name + suffix).casefold())
        names[key] = name + suffix
    return names


def tree_names(entries: Sequence[Sequence[tuple[str, object]]], policy: NamingPolicy, *,
               suffix: str = "") -> list[tuple[str, ...]]:
    """The path components of entries of a folder hierarchy, unique within each folder.

    Parameters
    ----------
    entries
        One sequence per entry (e.g. per instance) of ``(key, value)`` pairs, one pair per level, from the top
        (e.g. Patient ID, Study and Series Instance UIDs with their descriptions, SOP Instance UID).
    policy
        The naming policy.
    suffix
        Appended to the last component (a file extension).

    Returns
    -------
    list of tuple of str
        The components of each entry, in order. Two entries share a folder at a level if and only if they
        share the keys of that level and above; names of different keys in one folder differ (see
        :func:`assign_names`).

    Examples
    --------
    >>> tree_names([[("p1", "Doe"), ("s1", "1.2.3")]], NamingPolicy.readable())
    [('Doe', '1.2.3')]
    """
    paths: list[list[str]] = [[] for _ in entries]
    depth = len(entries[0]) if entries else 0
    for level in range(depth):
        folders: dict[tuple[str, ...], list[int]] = {}
        for index, path in enumerate(paths):
            folders.setdefault(tuple(path), []).append(index)
        for members in folders.values():
            names = assign_names((entries[i][level] for i in members), policy,
                                 suffix=suffix if level == depth - 1 else "")
            for i in members:
                paths[i].append(names[entries[i][level][0]])
    return [tuple(path) for path in paths]
