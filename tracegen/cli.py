"""The ``tracegen`` command line: ``main(argv=None) -> int``.

Each subcommand lives in its own module under :mod:`tracegen.commands` and exposes
``ORDER`` (its place in ``--help``) and ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. The subcommand's docstring is its help text. Modules are discovered, so
only subcommands that exist appear. User errors (:class:`TracegenError`) are printed as one line
on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from tracegen import __version__
from tracegen.errors import TracegenError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``tracegen CMD: error: ...``) and exit status 2."""

    def error(self, message: str):  # noqa: D102
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    import tracegen.commands as pkg

    parser = _Parser(prog="tracegen", description=(
        "Fit and sample synthetic embedding-lookup traces, train a lean DLRM on them, "
        "and analyse their cache locality."))
    parser.add_argument("--version", action="version", version=f"tracegen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if hasattr(mod, "register"):
            modules.append(mod)
    for mod in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        mod.register(sub)
    return parser


def _interrupted(e: BaseException) -> bool:
    """Whether a ``KeyboardInterrupt`` is the cause or context of ``e`` (anywhere down the chain)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user or system error such as a full disk, 1 for a failed
    check or no memory, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except TracegenError as e:
        print(f"tracegen: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tracegen: interrupted", file=sys.stderr)
        return 130
    except SystemError as e:  # Ctrl-C inside a numba kernel surfaces as "returned a result with an exception set"
        if not _interrupted(e):
            raise
        print("tracegen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # the system refused (disk full, permissions, read-only, ...): one line, no traceback
        where = e.filename if e.filename is not None else None
        what = e.strerror or str(e)
        print(f"tracegen: error: {where + ': ' if where else ''}{what}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("tracegen: error: out of memory (try a smaller input, fewer --workers, or a streaming "
              "command such as convert)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
