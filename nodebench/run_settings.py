"""What a run was asked to do, kept in ``run.json`` and printed at the top of its report: the command line and
environment that started it, and per experiment the task, methods, seeds, iteration or time limit and
hyper-parameters, with the warnings the settings check gave (:func:`nodebench.runner.settings.check_cases`)."""

from __future__ import annotations

import os
import platform
import shlex
import sys

from nodebench.markdown import markdown_table

#: Environment variables that change how a run behaves or where it runs; recorded in ``run.json``.
RECORDED_ENV_PREFIXES = ("NODEBENCH_", "OMP_", "MKL_", "CUDA_", "TORCH_", "CUBLAS_", "PYTORCH_")


def invocation() -> dict:
    """The command line (as a shell would re-run it) and the environment of this process."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(RECORDED_ENV_PREFIXES)}
    argv = list(sys.argv)
    if argv and argv[0].endswith(("/nodebench", "nodebench/cli.py")):  # the script, or python -m nodebench.cli
        argv[0] = "nodebench"
    return {"argv": argv, "command_line": shlex.join(argv), "cwd": os.getcwd(),
            "environment": {"python": sys.version.split()[0], "executable": sys.executable,
                            "platform": platform.platform(), "variables": env}}


def _value_text(values: list) -> str:
    values = sorted(set(map(str, values)), key=lambda v: (len(v), v))
    return values[0] if len(values) == 1 else "{" + ", ".join(values) + "}"


def case_settings(cases) -> list[dict]:
    """Per experiment (or task, for ``nodebench run``) of ``cases``: task, methods, seeds, limit and each
    hyper-parameter's value (a set where it varies across the cases), as JSON-ready dicts."""
    groups: dict[str, list] = {}
    for case in cases:
        groups.setdefault(case.experiment or case.task, []).append(case)
    out = []
    for name, group in groups.items():
        limits = sorted({f"{c.iters} iterations" if c.iters else f"{c.budget_s:g} s of training" if c.budget_s
                         else "100 iterations" for c in group})
        keys = sorted({k for c in group for k in c.hparams})
        hparams = {}
        for key in keys:
            by_method: dict[str, list] = {}
            for c in group:
                if key in c.hparams:
                    by_method.setdefault(c.method, []).append(c.hparams[key])
            text = _value_text([v for vs in by_method.values() for v in vs])
            if len(by_method) < len({c.method for c in group}):
                text += f" ({', '.join(by_method)} only)"
            hparams[key] = text
        out.append({"experiment": name, "task": group[0].task, "methods": list(dict.fromkeys(c.method for c in group)),
                    "seeds": sorted({c.seed for c in group}), "limit": " / ".join(limits), "device": group[0].device,
                    "hparams": hparams})
    return out


def settings_section(info: dict) -> list[str]:
    """The report's "Settings" section from a run's ``run.json`` (empty when it holds none): the latest command,
    the earlier ones that put cases into the folder (``earlier``) and the settings of each."""
    lines = []
    prior = info.get("earlier")
    earlier = [e for e in (prior if isinstance(prior, list) else []) if isinstance(e, dict) and e.get("command_line")]
    if info.get("command_line"):
        lines += ["## Settings", "", f"Command: `{info['command_line']}`" + (
            f" (in `{info['cwd']}`)" if info.get("cwd") else ""), ""]
        if earlier:
            lines += ["Earlier commands on this folder, whose cases the tables include too:", "",
                      *[f"- `{e['command_line']}`" + (f" (in `{e['cwd']}`)" if e.get("cwd") else "") for e in earlier],
                      ""]
        env = info.get("environment", {})
        variables = " ".join(f"{k}={v}" for k, v in env.get("variables", {}).items())
        lines += [f"Python {env.get('python', '?')} on {env.get('platform', '?')}"
                  + (f"; environment: `{variables}`" if variables else "") + ".", ""]
    if info.get("preset") or info.get("suite"):
        lines += [f"Preset: **{info.get('preset') or info.get('suite')}**" + (
            " — a smoke test of the pipeline, not a measurement to judge the paper by."
            if info.get("preset") == "smoke" else "."), ""]
    settings = [s for e in earlier for s in e.get("settings") or []] + (info.get("settings") or [])
    settings = [s for i, s in enumerate(settings) if s not in settings[:i]]
    if settings:
        if not lines:
            lines += ["## Settings", ""]
        rows = [[s["experiment"], s["task"], ", ".join(s["methods"]), ", ".join(map(str, s["seeds"])), s["limit"],
                 "; ".join(f"{k}={v}" for k, v in s["hparams"].items()) or "–"] for s in settings]
        lines += [markdown_table(["experiment", "task", "methods", "seeds", "limit", "hyper-parameters"], rows), ""]
    for warning in info.get("warnings") or []:
        lines += [f"> **Warning:** {warning}", ""]
    return lines
