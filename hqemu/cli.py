"""The command line, in QEMU's shape: `hqemu [options] program [guest args...]`.

Options end at the first word that is not an option, or at `--`; everything after goes to
the guest untouched. Every option is a Params field (plus -E/-U/--help/--version), accepted
with one or two dashes, as `-opt value` or `-opt=value`, and has an HQEMU_* environment twin
that argv overrides.

    $ hqemu -strace -d in_asm ./prog arg1 arg2
    $ HQEMU_STRACE=1 hqemu ./prog
    $ hqemu status 41234          # a subcommand only as the first word (a guest named status: ./status)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields

from . import __version__
from .errors import HqemuError
from .params import LOG_ITEMS, PARAMS_FIELDS, Params


@dataclass
class Invocation:
    params: Params
    program: str
    guest_args: list[str]  # argv[1:] of the guest
    set_env: list[str] = field(default_factory=list)  # -E VAR=VALUE, in order
    unset_env: list[str] = field(default_factory=list)  # -U VAR


def _flag(f) -> str:
    return f.metadata["flag"] or "-" + f.name.replace("_", "-")


def _env_name(f) -> str:
    return f.metadata["env"] or "HQEMU_" + f.name.upper()


_OPTIONS = {_flag(f).lstrip("-"): f for f in fields(Params)}
_EXTRA = {"E": "VAR=VALUE", "U": "VAR"}  # options that are not Params fields


def _parse_value(f, text: str, origin: str):
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if "bool" in kind:
        low = text.lower()
        if low in ("1", "y", "yes", "on", "true"):
            return True
        if low in ("0", "n", "no", "off", "false", ""):
            return False
        raise HqemuError(f"{origin}: expected a boolean, got '{text}'")
    if "int" in kind:
        return _parse_int(text, origin)
    choices = f.metadata["choices"]
    if choices and text not in choices:
        raise HqemuError(f"{origin}: '{text}' is not one of {', '.join(choices)}")
    return text


def _parse_int(text: str, origin: str) -> int:
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    body = text[:-1] if mult != 1 else text
    try:
        value = int(body, 0) * mult
    except ValueError:
        raise HqemuError(f"{origin}: expected a number, got '{text}'") from None
    if value < 0:
        raise HqemuError(f"{origin}: expected a non-negative number, got '{text}'")
    return value


def _check(values: dict) -> None:
    for item in filter(None, values.get("log_items", "").split(",")):
        if item not in LOG_ITEMS and item != "help":
            raise HqemuError(f"-d: unknown log item '{item}' (-d help lists them)")
    for name in ("hot_threshold", "trace_max_blocks", "max_block_insns", "stack_size", "guest_space"):
        if name in values and values[name] < 1:
            raise HqemuError(f"{_flag(PARAMS_FIELDS[name])}: must be at least 1")


def parse(argv: list[str], environ: dict[str, str]) -> Invocation | str:
    """Parse hqemu's argv (without argv[0]); returns an Invocation, or text to print and exit 0."""
    values: dict = {}
    for f in fields(Params):
        if _env_name(f) in environ:
            values[f.name] = _parse_value(f, environ[_env_name(f)], _env_name(f))
    set_env = [s for s in environ.get("HQEMU_SET_ENV", "").split(",") if s]
    unset_env = [s for s in environ.get("HQEMU_UNSET_ENV", "").split(",") if s]
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        name, eq, inline = word.lstrip("-").partition("=")
        i += 1
        if name in ("h", "help"):
            return usage()
        if name == "version":
            return f"hqemu version {__version__} (x86_64 guests; a dynamic binary translator after HQEMU)"
        f = _OPTIONS.get(name)
        if f is None and name not in _EXTRA:
            raise HqemuError(f"unknown option '{word}' (see --help)")
        is_bool = f is not None and "bool" in str(f.type)
        if is_bool and not eq:
            values[f.name] = True
            continue
        if eq:
            text = inline
        elif i < len(argv):
            text, i = argv[i], i + 1
        else:
            raise HqemuError(f"option '{word}' needs a value (see --help)")
        if name == "E":
            if "=" not in text:
                raise HqemuError(f"-E: expected VAR=VALUE, got '{text}'")
            set_env.append(text)
        elif name == "U":
            unset_env.append(text)
        else:
            values[f.name] = _parse_value(f, text, word)
    _check(values)
    if values.get("log_items", "").split(",").count("help"):
        return "\n".join(f"{k:10} {v}" for k, v in LOG_ITEMS.items())
    if i >= len(argv):
        raise HqemuError("no program given (see --help)")
    return Invocation(Params(**values), argv[i], argv[i + 1:], set_env, unset_env)


def usage() -> str:
    lines = ["usage: hqemu [options] program [arguments...]",
             "       hqemu status [URL | HOST:PORT | PORT] [--json]", "",
             "Runs a static Linux x86-64 program. Options end at the program name or at '--'.",
             "Each option has an environment twin (shown at the right); the command line wins.",
             "'hqemu status' shows the figures of a run started with -status-port (see 'hqemu status -h');",
             "it is a subcommand only as the first word: run a guest program named status as ./status.", ""]
    rows = [(f"-{_flag(f).lstrip('-')}" + (f" {f.metadata['metavar']}" if f.metadata["metavar"] else ""),
             f.metadata["reason"] + f" [{f.default}]" * (f.default not in (None, "", False)), _env_name(f))
            for f in fields(Params)]
    rows += [("-E VAR=VALUE", "set a variable in the guest's environment", "HQEMU_SET_ENV"),
             ("-U VAR", "remove a variable from the guest's environment", "HQEMU_UNSET_ENV"),
             ("-h, --help", "show this help", ""), ("--version", "show the version", "")]
    w = max(len(r[0]) for r in rows)
    lines += [f"  {a:<{w}}  {b}" + (f"  ({c})" if c else "") for a, b, c in rows]
    return "\n".join(lines)


def guest_environ(inv: Invocation, environ: dict[str, str]) -> list[str]:
    env = dict(environ)
    for item in inv.set_env:
        k, _, v = item.partition("=")
        env[k] = v
    for k in inv.unset_env:
        env.pop(k, None)
    return [f"{k}={v}" for k, v in env.items()]


def main(argv: list[str] | None = None) -> int:
    """Run hqemu; returns the exit status. No Python traceback reaches the user."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["status"]:
        from .status.client import main as status_main  # urllib only: no emulator import

        return status_main(argv[1:])
    inv = None
    try:
        inv = parse(argv, dict(os.environ))
        if isinstance(inv, str):
            print(inv)
            return 0
        from .runtime.process import run  # late: --help and usage errors need none of it

        return run(inv.params, inv.program, inv.guest_args, guest_environ(inv, dict(os.environ)))
    except HqemuError as e:
        print(f"hqemu: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of hqemu's: one line, the traceback only on request
        if inv is not None and not isinstance(inv, str) and "traceback" in inv.params.log_items.split(","):
            import traceback

            traceback.print_exc()
        print(f"hqemu: internal error: {type(e).__name__}: {e} (-d traceback shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
