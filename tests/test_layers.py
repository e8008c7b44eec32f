"""Imports flow one way: cli -> trainers, experiments -> families -> core, data, policies.

Walks every module's imports (top level and inside functions) and fails on a breach: a family
importing envs, trainers, experiments or the CLI; core importing anything above it; data
importing an algorithm.
"""

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "offrl_jax"
FAMILIES = {"ope", "mis", "pg", "linear", "fitted", "behavior", "offline"}
FAMILIES |= {"selection"}
TOP = {"cli", "trainers", "experiments"}
# What each layer may import from the package (besides itself).
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "policies": {"core", "data"},
    "envs": {"core", "data", "policies"},
    "family": {"core", "data", "policies"} | FAMILIES,
    "trainers": {"core", "data", "policies", "envs"} | FAMILIES | {"trainers"},
    "experiments": {"core", "data", "policies", "envs", "trainers", "experiments"} | FAMILIES,
    "cli": {"core", "data", "policies", "envs", "trainers", "experiments", "cli", "bench"} | FAMILIES,
}

# offrl_jax.formats (peer data layouts; imports core and data only) is read by the experiments and the CLI.
for _layer_name in ("experiments", "cli"):
    ALLOWED[_layer_name] = ALLOWED[_layer_name] | {"formats"}
# Since it is a package (offrl_jax/formats/), it is its own layer, below the families' users: core and data only.
ALLOWED["formats"] = {"core", "data"}
OTHER_LAYERS = {"formats"}


def _layer(top: str) -> str:
    return "family" if top in FAMILIES else top


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "__init__.py":
            continue
        yield rel.parts[0].removesuffix(".py"), path


@pytest.mark.parametrize("top,path", list(_modules()), ids=lambda x: str(x)[-40:] if isinstance(x, pathlib.Path) else x)
def test_imports_flow_one_way(top, path):
    layer = _layer(top)
    allowed = ALLOWED.get(layer, ALLOWED["family"]) | {top}
    bad = []
    for name, line in _imports(path):
        parts = name.split(".")
        if parts[0] != "offrl_jax" or len(parts) < 2:
            continue
        target = parts[1]
        if not (PKG / target).exists() and not (PKG / f"{target}.py").exists():
            continue  # `from offrl_jax import x` where x is a name, handled by the dotted form
        if target not in allowed:
            msg = f"{path.relative_to(PKG)}:{line} imports offrl_jax.{target}"
            if msg not in bad:
                bad.append(msg)
    assert not bad, "layer breach:\n" + "\n".join(bad)


def test_families_known():
    # Every top-level package folder is assigned to a layer (a new family must be listed).
    for p in PKG.iterdir():
        if p.is_dir() and not p.name.startswith("__"):
            assert p.name in FAMILIES | TOP | {"core", "envs"} | OTHER_LAYERS, p.name
