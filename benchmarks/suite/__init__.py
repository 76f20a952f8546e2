"""The benchmark suite: scenario registry, interleaved runner, table/JSON report, profile mode.

Layout: :mod:`~benchmarks.suite.model` (scenarios as data),
:mod:`~benchmarks.suite.registry` (every scenario of issue 10),
:mod:`~benchmarks.suite.runner` (subprocess runs, A/B interleaving, rows),
:mod:`~benchmarks.suite.stats`, :mod:`~benchmarks.suite.report`,
:mod:`~benchmarks.suite.profile` (py-spy) and :mod:`~benchmarks.suite.cli`.
"""
