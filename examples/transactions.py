"""Transactions: write a file, validate it, and roll the write back if validation fails.

Prefect 3's "write your first transaction" pattern. ``write_file`` and ``quality_test`` run in
one transaction; when ``quality_test`` raises, the transaction rolls back and runs the
``on_rollback`` hook of every task run that completed in it (newest first), so the file that was
written is deleted again. With valid contents the transaction commits and the file stays.
"""

import os
import tempfile

from actorflow import flow, task
from actorflow.transactions import get_transaction, transaction


@task
def write_file(path: str, contents: str):
    """Writes to a file, and tells the transaction where."""
    get_transaction().set("path", path)
    with open(path, "w") as f:
        f.write(contents)


@write_file.on_rollback
def del_file(txn):
    """Deletes the file the task wrote."""
    os.unlink(txn.get("path"))


@task
def quality_test(path: str):
    """Checks the contents of the file."""
    with open(path) as f:
        data = f.readlines()
    if len(data) < 2:
        raise ValueError("Not enough data!")


@flow
def pipeline(path: str, contents: str):
    with transaction():
        write_file(path, contents)
        quality_test(path)


def main() -> dict[str, bool]:
    """Run the pipeline with bad and good contents: whether the file exists after each."""
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "side-effect.txt")
    outcome = {}
    try:
        pipeline(path, contents="hello world")
    except ValueError:
        pass
    outcome["after failed validation"] = os.path.exists(path)
    pipeline(path, contents="hello\nworld\n")
    outcome["after passed validation"] = os.path.exists(path)
    os.unlink(path)
    os.rmdir(folder)
    return outcome


if __name__ == "__main__":
    print(main())  # {'after failed validation': False, 'after passed validation': True}
