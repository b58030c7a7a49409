"""The local launcher: the whole stack as processes on one machine, for development, tests and the benchmark.

Not shipped in any image (the images run `common/`, `master/` or `worker/` only).
"""
