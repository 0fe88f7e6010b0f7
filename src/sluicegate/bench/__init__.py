"""`sluicegate bench`: the benchmark of SPEC §9 (lives in the package so it runs from a pip install)."""
