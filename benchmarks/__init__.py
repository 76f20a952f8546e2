"""pilotgw's benchmarks: standalone scripts, and the suite that runs them all.

Each script prints its own figures (``--json`` for one JSON object); the
suite (``python -m benchmarks``, :mod:`benchmarks.suite`) runs them
interleaved with their baselines and prints one table of ratios.
"""
