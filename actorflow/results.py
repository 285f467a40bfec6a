"""Where persisted results live and how they are serialized.

``result_storage`` accepts a path, a URL (``s3://bucket/prefix``, ``gs://...``, ``az://...``;
object stores need ``pip install "actorflow[s3]"``) or one of the storages below; by default
records go to ``$ACTORFLOW_HOME/storage`` (``~/.actorflow/storage``). ``result_serializer``
accepts ``"auto"`` (the default: JSON when the value round-trips exactly, pickle otherwise),
``"json"``, ``"pickle"``, ``"cloudpickle"``, ``"compressed/pickle"``, ``"compressed/json"`` or
a serializer object.

Pickle records run code when they are loaded: read them only from storage you trust. A task
with ``result_serializer="json"`` never loads a pickle record.
"""

from ._cache._objectstore import ObjectStorage as ObjectStorage
from ._cache._records import CorruptRecord as CorruptRecord
from ._cache._records import Record as Record
from ._cache._records import decode_record as decode_record
from ._cache._serializers import AutoSerializer as AutoSerializer
from ._cache._serializers import CompressedSerializer as CompressedSerializer
from ._cache._serializers import JSONSerializer as JSONSerializer
from ._cache._serializers import PickleSerializer as PickleSerializer
from ._cache._serializers import Serializer as Serializer
from ._cache._storage import LocalStorage as LocalStorage
from ._cache._storage import ResultStorage as ResultStorage
from ._cache._storage import default_storage as default_storage
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._transactions._store import ResultRecord as ResultRecord
from ._transactions._store import ResultStore as ResultStore

#: Prefect's name for a local directory storage.
LocalFileSystem = LocalStorage

__all__ = (
    "AutoSerializer",
    "CompressedSerializer",
    "CorruptRecord",
    "JSONSerializer",
    "LocalFileSystem",
    "LocalStorage",
    "ObjectStorage",
    "PickleSerializer",
    "Record",
    "ResultRecord",
    "ResultStorage",
    "ResultStore",
    "Serializer",
    "decode_record",
    "default_storage",
)

_fixup_module_metadata(__name__, globals())
