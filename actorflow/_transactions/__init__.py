"""Transactions: task runs as atomic units of work, with commit and rollback (see
``_transaction.py``), their records' store and locks (``_store.py``), and atomic commits on
local storage (``_atomic.py``)."""
