"""Task runners that execute sync task bodies outside the flow's process: processes and Dask.

``_dask`` imports ``distributed`` and is imported only when ``DaskTaskRunner`` is asked for.
"""
