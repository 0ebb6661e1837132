"""The Zarr dataset store: one schema, an atomic writer, a reader, and store locations."""

from spin_data.store.location import StoreLocationError, parse_location
from spin_data.store.reader import Dataset, DatasetOpenError, Episode, open_dataset
from spin_data.store.writer import (
    DatasetWriteError,
    DatasetWriter,
    StagingExists,
    discard,
    publish,
)

__all__ = [
    "Dataset",
    "DatasetOpenError",
    "DatasetWriteError",
    "DatasetWriter",
    "Episode",
    "StagingExists",
    "StoreLocationError",
    "discard",
    "open_dataset",
    "parse_location",
    "publish",
]
