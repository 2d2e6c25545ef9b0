"""``nodebench data``: list the known data sets, verify a copy, fetch one from its official source.

Examples::

    nodebench data list                       # every data set: where it is looked for, found, verified, size
    NODEBENCH_DATA=../shared/data nodebench data verify mnist
    nodebench data fetch physionet            # sets A and B and their outcomes (add --optional for set C)

The data directory is ``--root``, else ``$NODEBENCH_DATA``, else ``<repo>/datasets``. ``verify`` exits 1
when a data set is missing or does not verify, so scripts can gate on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nodebench.argtypes import positive_float_up_to
from nodebench.datasets.catalog import catalog, status
from nodebench.datasets.fetch import MAX_TIMEOUT_S, TIMEOUT_S, fetch
from nodebench.datasets.storage import ENV_VAR, data_root
from nodebench.paths import nonempty_path

EXAMPLES = """examples:
  nodebench data list
  NODEBENCH_DATA=../shared/data nodebench data verify mnist
  nodebench data fetch physionet --root ~/data
"""


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` (with ``list``, ``verify`` and ``fetch``) to the ``nodebench`` sub-command parsers."""
    data = subparsers.add_parser("data", help="list, verify or fetch the data sets (MNIST, PhysioNet, ...)",
                                 description=__doc__.split("\n\n")[0].replace("``", ""), epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = data.add_subparsers(dest="data_command", required=True, parser_class=type(data))
    common = {"--root": dict(type=nonempty_path, help=f"data directory (default ${ENV_VAR}, else <repo>/datasets)"),
              "--manifest": dict(type=nonempty_path, help="data manifest (default nodebench/datasets/manifest.toml)")}
    listing = actions.add_parser("list", help="every known data set: where, found, verified, size")
    listing.add_argument("--no-verify", action="store_true", help="skip the checksums (only look for the files)")
    verify = actions.add_parser("verify", help="checksum the files of one data set, or of every one found")
    verify.add_argument("name", nargs="?", help="data set (default: every data set that is found)")
    get = actions.add_parser("fetch", help="download a data set from its official source, verified")
    get.add_argument("name", help="data set, e.g. mnist or physionet")
    get.add_argument("--optional", action="store_true", help="also the optional files (PhysioNet's set C)")
    get.add_argument("--timeout-s", type=positive_float_up_to(MAX_TIMEOUT_S), default=TIMEOUT_S,
                     help=f"network timeout in seconds, at most {MAX_TIMEOUT_S:g} (default {TIMEOUT_S:g})")
    get.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    for parser in (listing, verify, get):
        for flag, options in common.items():
            parser.add_argument(flag, **options)
    return data


def run(args) -> int:
    """Run ``nodebench data …``; returns the exit code."""
    if args.data_command == "list":
        return _list(args)
    if args.data_command == "verify":
        return _verify(args)
    return _fetch(args)


def _data_dir(args) -> Path:
    """The data directory to read; a file there is a :class:`UserError` (a missing folder holds no data)."""
    return data_root(args.root)


def _list(args) -> int:
    directory, known = _data_dir(args), catalog(args.manifest)  # both checked before anything is printed
    print(f"data directory: {directory}")
    for name, dataset in known.items():
        state = status(name, args.root, verify=not args.no_verify, manifest=args.manifest)
        size = _size(state.size) if state.size else "-"
        word = "verified" if state.verified else "found" if state.found else "missing"
        print(f"  {name:<10} {word:<9} {size:>10}  {state.where}")
        print(f"  {'':<10} {dataset.title}; tasks: {', '.join(dataset.tasks) or '-'}")
        if not state.verified:
            print(f"  {'':<10} {state.summary()}")
    return 0


def _verify(args) -> int:
    directory = _data_dir(args)
    names = [args.name] if args.name is not None else [  # a named one, even '', is looked up (unknown: UserError)
        n for n in catalog(args.manifest) if status(n, args.root, verify=False, manifest=args.manifest).found]
    if not names:
        print(f"no data set found in {directory}")
        return 1
    failed = 0
    for name in names:
        state = status(name, args.root, manifest=args.manifest)
        print(f"{name}: {state.summary()} ({state.where})")
        for item in state.files:
            where = item.found if item.found is not None else state.where / item.spec.path
            optional = " (optional)" if item.spec.optional else ""
            print(f"  {item.state:<9} {where}{optional}: {item.detail}")
        if not state.verified:
            print(f"  {_remedy(name, state)}")
        failed += not state.verified
    return 1 if failed else 0


def _remedy(name: str, state) -> str:
    """What to do about a data set that does not verify: fetch what is missing or mismatched, else (only
    unpinned checksums) use it with --no-verify."""
    states = {f.state for f in state.files if not (f.spec.optional and f.state == "missing")}
    if states & {"missing", "mismatch"}:
        return (f"to fix: `nodebench data fetch {name}` downloads the missing files and those that do not "
                "match again (a mismatching copy in another form is kept as <file>.mismatch)")
    return f"no checksum pinned for some files: `nodebench run --no-verify` uses {name} as it is"


def _fetch(args) -> int:
    written = fetch(args.name, args.root, manifest=args.manifest, timeout=args.timeout_s,
                    progress=not args.no_progress, optional=args.optional)
    state = status(args.name, args.root, manifest=args.manifest)
    print(f"{args.name}: {len(written)} file(s) downloaded; {state.summary()} ({state.where})")
    return 0 if state.verified else 1


__all__ = ["add_parser", "run"]
