"""The README's API tour runs as written (so the README stays true)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_api_tour_runs():
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## API tour"):]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    exec(compile(code, "README.md (API tour)", "exec"), {})
