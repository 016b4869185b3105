"""The DataSet type: a pydicom Dataset that also knows where it came from."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset

from medipy.io.dicom.plain_values import transfer_syntax_of

__all__ = ["DataSet"]


class DataSet(Dataset):
    """A DICOM dataset: a :class:`pydicom.dataset.Dataset` with medipy's provenance attributes.

    The whole pydicom API works on it (``ds.PatientName``, ``ds[0x0010, 0x0010]``, ``ds.pixel_array``);
    it pickles, so that it can travel to dask workers.

    Attributes
    ----------
    path : str or None
        The file it was read from (for a DICOMDIR directory record: the DICOMDIR file).
    children : list of DataSet
        For a DICOMDIR directory record: its lower-level records (a SERIES record's IMAGE records).
    frame : int or None
        For a dataset made from one frame of a multi-frame object or one tile of a mosaic (see
        :func:`medipy.io.dicom.stacks`): the index of that frame or tile in its source; else None.
    source : Dataset or None
        For such a frame: the dataset holding its pixels. ``pixel_array`` then decodes that frame only.

    Examples
    --------
    >>> ds = DataSet()
    >>> ds.PatientName = "Doe^John"
    >>> str(ds.PatientName)
    'Doe^John'
    """

    # Class-level defaults: pydicom's Dataset keeps plain (non-keyword) attributes in the instance dict.
    path: str | None = None
    children: list[DataSet] = []  # noqa: RUF012 - replaced, never mutated, per instance
    frame: int | None = None
    source: Dataset | None = None

    @classmethod
    def from_pydicom(cls, ds: Dataset, *, path: str | None = None) -> DataSet:
        """Wrap a pydicom dataset (and its file meta, preamble and encoding) without copying elements.

        Parameters
        ----------
        ds
            The pydicom dataset or FileDataset.
        path
            The file it was read from, if known (defaults to ``ds.filename`` when it is a str).

        Returns
        -------
        DataSet
            A DataSet sharing the element objects of ``ds``.
        """
        out = cls(ds)
        file_meta = getattr(ds, "file_meta", None)
        if file_meta is not None:
            out.file_meta = file_meta if isinstance(file_meta, FileMetaDataset) else FileMetaDataset(file_meta)
        preamble = getattr(ds, "preamble", None)
        if preamble is not None:
            out.preamble = preamble
        for attribute in ("_read_implicit", "_read_little", "_read_charset", "_is_implicit_VR",
                          "_is_little_endian"):
            if attribute in ds.__dict__:
                out.__dict__[attribute] = ds.__dict__[attribute]
        filename = getattr(ds, "filename", None)
        out.path = path if path is not None else (filename if isinstance(filename, str) else None)
        return out

    @property
    def transfer_syntax(self) -> str | None:
        """The Transfer Syntax UID of the file meta, or None."""
        return transfer_syntax_of(self)

    @property
    def pixel_array(self) -> Any:
        """The stored pixel values; for a frame (see ``source``), those of that frame or tile only."""
        if self.source is None:
            return super().pixel_array
        from medipy.io.dicom.pixels import frame_pixels

        return frame_pixels(self)

    def is_directory_record(self) -> bool:
        """True for a DICOMDIR directory record (it has a Directory Record Type)."""
        return "DirectoryRecordType" in self


