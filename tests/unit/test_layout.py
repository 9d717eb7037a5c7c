"""The import rules of the README's Layout section, checked on the source: layers import only
downward (data format <- models <- components <- pipeline <- CLI); serving/ is rooms by role (the
contract, the deploy files, the clients, the stand-in model server), each importing only the rooms
it needs, so a gRPC client never loads the server, TFX or tf.Transform; and the Pusher and the
InfraValidator meet only through artifacts and serving/deploy.py, never by importing each other."""
import ast
import pathlib
import subprocess
import sys

from tests.helpers import PACKAGES, REPO

# Floors, lowest first; a module may import its own floor and the ones below it. The contract and
# the deploy files are shared with the pipeline (models export the contract, components write the
# deploy files); the rest of serving/ is applications the CLI starts.
LAYERS = [("ratings",), ("serving.contract", "serving.deploy"), ("models",), ("components",), ("pipeline",),
          ("movierec",)]
# serving/'s rooms: the serving modules each room may import besides its own (nothing outside serving/).
SERVING_ROOMS = {
    "serving.contract": (),
    "serving.deploy": ("serving.contract",),
    "serving.client": ("serving.contract",),
    "serving.rest_client": ("serving.contract", "serving.client"),
    "serving.model_server": ("serving.contract",),
}
# Component packages that must not import each other.
APART = ("components.pusher", "components.infra_validator")


def _layer(module: str) -> int:
    """Index in LAYERS of the longest prefix that names the module."""
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return best[0] if best else None


def _room(module: str, rooms) -> str:
    """The entry of `rooms` that is the module or a package holding it (None if none)."""
    return next((room for room in rooms if module == room or module.startswith(room + ".")), None)


def _project_imports(path: pathlib.Path, root: pathlib.Path):
    """(line, module) of each import of this project's modules; `from package import module`
    counts as importing package.module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            is_package = (root.joinpath(*node.module.split(".")) / "__init__.py").is_file()
            names = [f"{node.module}.{a.name}" for a in node.names] if is_package else [node.module]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield node.lineno, name


def _allowed(module: str, imported: str) -> bool:
    if module.startswith("serving.") and not imported.startswith("serving"):
        # The rooms shared with the pipeline may read the data format; the rest of serving/ nothing.
        return _layer(module) is not None and _layer(imported) == 0
    if module.startswith("serving."):
        own = _room(module, SERVING_ROOMS)
        target = _room(imported, SERVING_ROOMS)
        return own is not None and target is not None and (target == own or target in SERVING_ROOMS[own])
    apart = _room(module, APART)
    if apart and _room(imported, APART) not in (None, apart):
        return False
    if imported.startswith("serving") and _layer(imported) is None:
        return _layer(module) == len(LAYERS) - 1  # clients and the model server: the CLI starts them
    own, target = _layer(module), _layer(imported)
    return target is not None and own is not None and target <= own


def wrong_imports(root: pathlib.Path = REPO):
    """'path:line imports module' for each import against the rules, over the packages under root."""
    wrong = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for line, imported in _project_imports(path, root):
                if not _allowed(module, imported):
                    wrong.append(f"{path.relative_to(root)}:{line} imports {imported}")
    return wrong


def test_imports_follow_the_layers_and_rooms():
    wrong = wrong_imports()
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_rules_catch_planted_wrong_imports(tmp_path):
    """The check above is only worth something if it can fail: a copy of the tree's package
    folders with one wrong import planted per rule, and allowed ones beside them."""
    files = {
        "components/__init__.py": "",
        "components/pusher/__init__.py": "",
        "components/pusher/planted.py": "from components.infra_validator import executor\nfrom serving import deploy\n",
        "components/infra_validator/__init__.py": "",
        "components/infra_validator/planted.py": "import components.pusher.executor\nfrom components import infra_blessing\n",
        "components/planted.py": "from serving.model_server import server\nfrom serving import contract\n",
        "models/__init__.py": "",
        "models/planted.py": "from components import verdicts\nfrom ratings import features\n",
        "serving/__init__.py": "",
        "serving/client.py": "from serving.model_server import server\nfrom serving import contract\n",
        "serving/contract.py": "from serving import deploy\n",
        "serving/deploy.py": "from serving import contract\nfrom components import verdicts\n",
        "serving/model_server/__init__.py": "",
        "serving/model_server/server.py": ("from serving.model_server import batching\nfrom serving.client import predict_request\n"
                                           "from ratings import features\n"),
        "movierec/__init__.py": "",
        "movierec/cli.py": "from serving.model_server import server\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert sorted(wrong_imports(tmp_path)) == sorted([
        "components/pusher/planted.py:1 imports components.infra_validator.executor",
        "components/infra_validator/planted.py:1 imports components.pusher.executor",
        "components/planted.py:1 imports serving.model_server.server",
        "models/planted.py:1 imports components.verdicts",
        "serving/client.py:1 imports serving.model_server.server",
        "serving/contract.py:1 imports serving.deploy",
        "serving/deploy.py:2 imports components.verdicts",
        "serving/model_server/server.py:2 imports serving.client",
        "serving/model_server/server.py:3 imports ratings",
    ])


def test_each_floor_refuses_the_floor_above(tmp_path):
    """One module planted on each package floor imports the floor above it and is reported; the
    same import planted one floor higher (so downward) is not."""
    floors = [layer[0] for layer in LAYERS if "." not in layer[0]]
    files = {f"{floor}/__init__.py": "" for floor in floors}
    for below, above in zip(floors, floors[1:]):
        files[f"{below}/planted.py"] = f"import os\nimport {above}\n"
        files[f"{above}/down.py"] = f"import {below}\n"
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert sorted(wrong_imports(tmp_path)) == sorted(
        f"{below}/planted.py:2 imports {above}" for below, above in zip(floors, floors[1:]))


def test_serving_loads_neither_tfx_nor_tf_transform_and_a_client_not_the_model_server():
    """In a fresh process, as a client application (or the model server) would import them: first
    the clients alone (no model-server module loaded), then the rest of serving/ (no TFX, tf.Transform,
    Beam nor any floor above the contract). One process for both: each import costs seconds."""
    code = ("import sys, serving.client, serving.rest_client; "
            "print(sorted(m for m in sys.modules if m.startswith('serving.model_server'))); "
            "import serving.deploy, serving.model_server.server; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tfx', 'tensorflow_transform', 'apache_beam', "
            "'components', 'models', 'pipeline'}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    by_client, by_serving = loaded.stdout.strip().splitlines()
    assert by_client == "[]", f"a client loads the model server: {by_client}"
    assert by_serving == "[]", f"serving/ loads: {by_serving}"
