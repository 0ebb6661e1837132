"""The Zarr dataset store: one schema, an atomic writer, a reader, and store locations."""

from spin_data.store.location import StoreLocationError, parse_location
from spin_data.store.reader import Dataset, DatasetOpenError, Episode, open_dataset
from spin_data.store.writer import (
    DatasetWriteError,
    DatasetWriter,
    StagingExists,
    WriterBusy,
    discard,
    publish,
    writer_lock,
)

__all__ = [
    "Dataset",
    "DatasetOpenError",
    "DatasetWriteError",
    "DatasetWriter",
    "Episode",
    "StagingExists",
    "StoreLocationError",
    "WriterBusy",
    "discard",
    "open_dataset",
    "parse_location",
    "publish",
    "writer_lock",
]
