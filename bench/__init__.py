"""vaekit benchmarks: one module per benchmark, each runnable as ``python -m bench.<name>``.

Every benchmark prints a table and writes JSON to ``bench/results/<name>.json`` (git-ignored).
See bench/README.md for what each number means.
"""
