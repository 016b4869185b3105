"""The dask engine of medipy: scan, shuffle, lazy arrays, zarr sink, parallel DICOM writer, cluster."""
