"""Transactions, as in Prefect's ``prefect.transactions``: the task runs completed inside a
transaction commit together when it ends, or roll back together (running their ``on_rollback``
hooks, newest first) when it raises.

    with transaction(key="daily-report") as txn:
        if txn.is_committed():
            return txn.read().result
        ...
"""

from ._core import fixup_module_metadata as _fixup_module_metadata
from ._transactions._modes import CommitMode as CommitMode
from ._transactions._modes import IsolationLevel as IsolationLevel
from ._transactions._modes import TransactionState as TransactionState
from ._transactions._transaction import AsyncTransaction as AsyncTransaction
from ._transactions._transaction import Transaction as Transaction
from ._transactions._transaction import atransaction as atransaction
from ._transactions._transaction import get_transaction as get_transaction
from ._transactions._transaction import transaction as transaction

__all__ = (
    "AsyncTransaction",
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "atransaction",
    "get_transaction",
    "transaction",
)

_fixup_module_metadata(__name__, globals())
