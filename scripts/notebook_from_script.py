"""Write a workbook notebook (.ipynb, no outputs) from a jupytext percent-format script.

    python scripts/notebook_from_script.py draft.py notebooks/01_curation.ipynb

Cells start with ``# %%`` (code) or ``# %% [markdown]``; mark the parameters cell with
``# %% tags=["parameters"]``. The notebook gets the kernelspec and language_info that papermill needs.
"""

import sys
from pathlib import Path

import jupytext
import nbformat


def convert(src: str, dst: str) -> None:
    nb = jupytext.read(src, fmt="py:percent")
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
    }
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("lines_to_next_cell", None)
        cell["id"] = f"cell-{i:02d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    Path(dst).write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2])
