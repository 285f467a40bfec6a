"""A cache shared between machines: results stored in an S3 bucket instead of local files.

Seed snippet: ``cache_policy=INPUTS`` with remote ``result_storage``. The bucket URL comes from
``ACTORFLOW_CACHE_BUCKET`` (default ``s3://my-cache-bucket``); credentials, region and endpoint
come from the usual ``AWS_*`` environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``) rather than from code.
Needs the ``s3`` extra (``pip install actorflow[s3]``).
"""

import os

from actorflow import RunRecorder, task
from actorflow.cache_policies import INPUTS

CACHE_BUCKET = os.environ.get("ACTORFLOW_CACHE_BUCKET", "s3://my-cache-bucket")


@task(cache_policy=INPUTS, result_storage=CACHE_BUCKET)
def my_cached_task(x: int):
    return x + 42


def main() -> list[tuple[str, int]]:
    """Call the task twice with the same input; (state name, result) of each call."""
    with RunRecorder() as recorder:
        my_cached_task(1)
        my_cached_task(1)
    return [(e.state.name, e.state.result()) for e in recorder.events if e.state.is_final()]


if __name__ == "__main__":
    print(main())  # [('Completed', 43), ('Cached', 43)] on a fresh bucket
