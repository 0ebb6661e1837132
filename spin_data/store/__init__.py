"""The Zarr dataset store: one schema, an atomic writer, a reader, and store locations."""

from spin_data.store.location import StoreLocationError, parse_location
from spin_data.store.reader import Dataset, DatasetOpenError, Episode, open_dataset
from spin_data.store.publishing import publish
from spin_data.store.staging import (
    DatasetWriteError,
    StagingExists,
    WriterBusy,
    discard,
    writer_lock,
)
from spin_data.store.writer import DatasetWriter

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
