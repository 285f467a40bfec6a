"""Lock managers for ``SERIALIZABLE`` transactions (``actorflow.locking.memory``)."""
