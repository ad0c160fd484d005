"""Names shared by every module: the four stages in their clinical order, where the weights live."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

CLASS_NAMES: tuple[str, ...] = ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")
BINARY_CLASS_NAMES: tuple[str, ...] = ("NonDemented", "Demented")


def shipped_dir(name: str) -> Path:
    """A folder that ships with the models ("weights", "examples"): the checkout's top-level one, or
    in an installed wheel the package data it became (`mrivision/shipped/<name>`, see pyproject.toml)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / name).is_dir():
        return root / name
    return Path(str(resources.files("mrivision").joinpath("shipped", name)))


WEIGHTS_DIR = shipped_dir("weights")  # shipped `NAME.safetensors` + `NAME.json` (+ `NAME.predictions.csv`)
EXAMPLES_DIR = shipped_dir("examples")  # example slices and their ATTRIBUTION.md
WEIGHTS_ENV = "MRIVISION_WEIGHTS_DIR"  # another weights folder, for the CLI and the app alike


def weights_dir() -> Path:
    """Where models are looked up by name: $MRIVISION_WEIGHTS_DIR if set, else the shipped `weights/`."""
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    return Path(env).expanduser() if env else WEIGHTS_DIR

CLASS_ALIASES: dict[str, str] = {
    # canonical names, lower-cased, punctuation stripped -> canonical
    "nondemented": "NonDemented",
    "noimpairment": "NonDemented",
    "normal": "NonDemented",
    "cn": "NonDemented",
    "verymilddemented": "VeryMildDemented",
    "verymildimpairment": "VeryMildDemented",
    "verymilddementia": "VeryMildDemented",
    "milddemented": "MildDemented",
    "mildimpairment": "MildDemented",
    "milddementia": "MildDemented",
    "moderatedemented": "ModerateDemented",
    "moderateimpairment": "ModerateDemented",
    "moderatedementia": "ModerateDemented",
    "demented": "Demented",
    "alzheimers": "Demented",
    "ad": "Demented",
}


def canonical_class(name: str) -> str:
    """Map a folder or label name such as "Mild Dementia" or "No_Impairment" to our class name."""
    key = "".join(ch for ch in str(name).lower() if ch.isalnum())
    if key in CLASS_ALIASES:
        return CLASS_ALIASES[key]
    raise ValueError(f"unknown class name {name!r}; expected one of {', '.join(CLASS_NAMES)} or an alias")
