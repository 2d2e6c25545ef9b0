"""Regression benchmarking and ranking: suites, the run history, the regression gate, history plots and the
leaderboard (``nodebench bench``, ``compare``, ``history``, ``leaderboard``)."""
