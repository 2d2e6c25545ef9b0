"""nodebench: benchmark and reproduction suite for methods that make neural ODEs cheaper to train.

The Python API (:mod:`nodebench.api`) is available from the top-level package::

    import nodebench
    nodebench.reproduce("do_vs_od", preset="smoke", out="results/do_vs_od-smoke")

Library code is imported from its module: ``from nodebench.gq import odeint_adjoint_gq``,
``from nodebench.taylor import ode_derivatives``, ``from nodebench.cnf import CNF``, ``nodebench.snode``.
"""

__version__ = "0.1.0"

API = ("run", "reproduce", "report", "bench", "compare", "history", "leaderboard", "get_task", "get_method",
       "list_tasks", "list_methods", "list_papers", "describe_cases", "RunResult")
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    # The API imports torch and the paper packages: load it on first use, so that importing a numerics
    # module (nodebench.gq, nodebench.taylor...) stays light.
    if name in API:
        from nodebench import api

        return getattr(api, name)
    raise AttributeError(f"module 'nodebench' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the lazily loaded API too: tab completion in a notebook and ``dir(nodebench)`` list ``nodebench.run``
    return sorted({*globals(), *API})
