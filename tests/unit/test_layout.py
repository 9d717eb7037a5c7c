"""The import rule of the README's Layout section, checked on the source: layers import only
downward (data format <- models <- components <- pipeline <- CLI), and serving depends on the
contract module alone, so a gRPC client never loads TFX or tf.Transform."""
import ast
import pathlib
import subprocess
import sys

from tests.conftest import REPO

# Floors, lowest first; a module may import its own floor and the ones below it.
LAYERS = [("ratings",), ("serving.contract",), ("models",), ("components",), ("pipeline",), ("movierec",)]
PACKAGES = ("ratings", "models", "components", "pipeline", "movierec", "serving")


def _layer(module: str) -> int:
    """Index in LAYERS of the longest prefix that names the module."""
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return best[0] if best else None


def _is_package(module: str) -> bool:
    return (REPO.joinpath(*module.split(".")) / "__init__.py").is_file()


def _project_imports(path: pathlib.Path):
    """(line, module) of each import of this project's modules; `from package import module`
    counts as importing package.module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ([f"{node.module}.{a.name}" for a in node.names] if _is_package(node.module)
                     else [node.module])
        else:
            names = []
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield node.lineno, name


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, ".".join(path.relative_to(REPO).with_suffix("").parts)


def _wrong_imports(modules):
    """`path:line imports module` for each import against the floors, of (path, module name) pairs."""
    wrong = []
    for path, module in modules:
        own = _layer(module)
        for line, imported in _project_imports(path):
            target = _layer(imported)
            if module.startswith("serving.") and module != "serving.contract":
                allowed = imported.startswith("serving.") or imported == "serving"
            elif imported.startswith("serving") and imported != "serving.contract":
                # Only the contract is shared; the rest of serving/ is an application the CLI starts.
                allowed = own == len(LAYERS) - 1
            else:
                allowed = target is not None and own is not None and target <= own
            if not allowed:
                shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
                wrong.append(f"{shown}:{line} imports {imported}")
    return wrong


def test_layers_import_only_downward():
    wrong = _wrong_imports(_modules())
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check above is only worth something if it can fail: one module planted on each floor
    imports the floor above it (and serving the pipeline), and each is reported; the same
    imports planted one floor higher are not."""
    planted = []
    for below, above in zip(LAYERS, LAYERS[1:]):
        module = below[0]
        path = tmp_path / f"{module}_planted.py"
        path.write_text(f"import os\nimport {above[0]}\n")
        planted.append((path, module))
    client = tmp_path / "serving.client_planted.py"
    client.write_text("from pipeline import configs\n")
    wrong = _wrong_imports(planted + [(client, "serving.client")])
    assert wrong == [f"{path.name}:2 imports {above[0]}" for (path, _), above in zip(planted, LAYERS[1:])] + [
        f"{client.name}:1 imports pipeline.configs"]
    downward = []
    for lower, own in zip(LAYERS, LAYERS[1:]):
        path = tmp_path / f"{own[0]}_down.py"
        path.write_text(f"import {lower[0]}\n")
        downward.append((path, own[0]))
    assert _wrong_imports(downward) == []


def test_serving_loads_neither_tfx_nor_tf_transform():
    """In a fresh process, as a client application would import them."""
    code = ("import sys, serving.client, serving.server, serving.loadgen; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tfx', 'tensorflow_transform', 'apache_beam', "
            "'components', 'models', 'pipeline'}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]"
