"""Dataset tools on published stores: verify, combine, export, import, describe.

They sit above :mod:`spin_data.store` (the format layer, which knows nothing of recipes or
tools) and may use recipes, the environment registry and the store alike.

Every tool reads published stores read-only and writes new data only through
:class:`~spin_data.store.writer.DatasetWriter` (a new store, published atomically) or to a new
file; nothing already published is ever modified. The only place anything is unpickled is
:func:`import_benchmark_pickle`, and only when the caller passes ``allow_pickle=True``; even then
the restricted unpickler of :mod:`~spin_data.tools.restricted_pickle` refuses every global
but the few numpy needs to rebuild arrays and scalars.

Library errors are :class:`ToolError` (a ``ValueError``) or the store's own errors
(:class:`~spin_data.store.reader.DatasetOpenError`,
:class:`~spin_data.store.location.StoreLocationError`,
:class:`~spin_data.store.staging.DatasetWriteError`, :class:`~spin_data.store.staging.StagingExists`),
each one line naming the store and the problem.

Modules: ``verification`` (verify), ``combination`` (combine), ``npz_export`` (export_npz),
``benchmark_import`` (the benchmark's pickles -> a store), ``restricted_pickle`` (the only
unpickler, security code), ``summary`` (info), ``minari_io`` (Minari export and import),
``card`` (dataset cards), ``base`` (what they share).
"""

from spin_data.tools.base import ToolError
from spin_data.tools.benchmark_import import (
    ImportedEpisodes,
    import_benchmark_pickle,
    split_benchmark_transitions,
)
from spin_data.tools.combination import INHERITED_KEYS, combine, combined_quality
from spin_data.tools.npz_export import export_npz
from spin_data.tools.restricted_pickle import (
    PICKLE_REFUSAL,
    PickleNotAllowed,
    RestrictedUnpickler,
)
from spin_data.tools.summary import info_card, info_dict
from spin_data.tools.verification import VerifyReport, verify

__all__ = [
    "INHERITED_KEYS",
    "PICKLE_REFUSAL",
    "ImportedEpisodes",
    "PickleNotAllowed",
    "RestrictedUnpickler",
    "ToolError",
    "VerifyReport",
    "combine",
    "combined_quality",
    "export_npz",
    "import_benchmark_pickle",
    "info_card",
    "info_dict",
    "split_benchmark_transitions",
    "verify",
]
