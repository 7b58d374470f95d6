"""The dependency rules of docs/architecture.md, checked on the source: imports run one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package -> the hqemu packages/modules it may import (besides itself)
ALLOWED = {
    "hqemu.ir": set(),
    "hqemu.frontends": {"hqemu.ir", "hqemu.errors"},
    "hqemu.quick": {"hqemu.ir", "hqemu.errors"},
    "hqemu.linux": {"hqemu.ir", "hqemu.errors", "hqemu.frontends", "hqemu.env", "hqemu.params",
                    "hqemu.log", "hqemu.stats"},
    "hqemu.native": {"hqemu.ir", "hqemu.errors", "workers"},
    "hqemu.trace": {"hqemu.ir", "hqemu.errors", "workers"},
    "workers": {"hqemu.ir"},
    # the status endpoint only reads the records of the runtime and the tiers
    "hqemu.status": {"hqemu.errors", "hqemu.runtime", "hqemu.linux", "hqemu.trace", "hqemu.native",
                     "hqemu.env", "hqemu.params", "hqemu.stats"},
}
# modules that may import hqemu.status: the process that starts the server, the CLI (the client)
STATUS_IMPORTERS = {"hqemu/runtime/process.py", "hqemu/cli.py"}


def _imports(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod in ("hqemu", "workers"):  # `from hqemu import frontends` imports hqemu.frontends
                out.update(f"{mod}.{a.name}" for a in node.names)
            else:
                out.add(mod)
    return {m for m in out if m == "workers" or m.startswith(("hqemu", "workers."))}


def _module_package(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()  # the package holding the module
    return ".".join(parts)


def test_imports_follow_the_layering():
    bad = []
    for owner, allowed in ALLOWED.items():
        folder = ROOT / owner.replace(".", "/")
        for path in folder.rglob("*.py"):
            for mod in _imports(path, _module_package(path)):
                if mod == owner or mod.startswith(owner + "."):
                    continue
                if not any(mod == a or mod.startswith(a + ".") for a in allowed):
                    bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_only_the_process_and_the_cli_import_the_status_endpoint():
    bad = []
    for folder in (ROOT / "hqemu", ROOT / "workers"):
        for path in folder.rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel.startswith("hqemu/status/") or rel in STATUS_IMPORTERS:
                continue
            mods = _imports(path, _module_package(path))
            if any(m == "hqemu.status" or m.startswith("hqemu.status.") for m in mods):
                bad.append(rel)
    assert not bad, "only runtime/process.py and cli.py may import hqemu.status: " + ", ".join(bad)

