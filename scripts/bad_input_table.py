"""Print the table "What happens with bad input" (docs/bad_input.md): each case in tests/test_io.py's
BAD_INPUT_CASES run through `mrivision.load_image`, with the message the user sees.

    python scripts/bad_input_table.py            # print the table
    python scripts/bad_input_table.py --readme   # also replace it in docs/bad_input.md between the markers

The markers are ``<!-- bad-input:begin -->`` and ``<!-- bad-input:end -->``; without them the
README is left alone. Nothing here is hand-typed: the inputs are the test suite's own.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bad-input:begin -->", "<!-- bad-input:end -->"


def bad_input_cases() -> list:
    """BAD_INPUT_CASES from tests/test_io.py, imported by path (tests/ is not a package)."""
    path = ROOT / "tests" / "test_io.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("_mrivision_test_io", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BAD_INPUT_CASES


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table() -> str:
    from mrivision.errors import ImageLoadError
    from mrivision.inputs.image import load_image

    rows = ["| Input | What the user sees |", "|---|---|"]
    for _case_id, description, factory, _expected in bad_input_cases():
        data = factory() if callable(factory) else factory
        try:
            load_image(data)
            outcome = "(read without an error)"
        except ImageLoadError as exc:
            outcome = f"“{exc}”"
        rows.append(f"| {cell(description)} | {cell(outcome)} |")
    return "\n".join(rows)


def replace_in_readme(text: str, readme: Path) -> bool:
    content = readme.read_text()
    if BEGIN not in content or END not in content:
        return False
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", content, count=1))
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", action="store_true", help="replace the table between the markers in docs/bad_input.md")
    args = ap.parse_args(argv)
    text = table()
    print(text)
    if args.readme:
        readme = ROOT / "docs" / "bad_input.md"
        if replace_in_readme(text, readme):
            print(f"\nupdated {readme}", file=sys.stderr)
        else:
            print(f"\n{readme} has no {BEGIN} ... {END} markers; not changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
