"""The pieces of ``python -m elman bench`` (the command line is elman/benchmark.py).

grid: configurations, inputs and the measures derived from a shape.
impls: elman and its peers, each built from the same weights.
measure: the sgemm yardstick, checking against the oracle, timing.
report: the speed-up summary, the environment, Markdown, CSV and JSON.
plot: the speed-up chart (needs matplotlib).
"""
