"""``valueloss-app``: start the app (``streamlit run app.py``) from wherever valueloss is installed.

The wheel ships the app folder (app.py, pages/, .streamlit/config.toml) as the package ``valueloss_app``;
in a source checkout the folder is the repository itself. Streamlit reads ``.streamlit/config.toml``
from the working directory, so the app runs from its own folder. Streamlit is started as a child
process (``python -m streamlit``): this module imports nothing of the app's libraries.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

__all__ = ["app_folder", "main"]


def app_folder() -> Path:
    """The folder holding app.py and pages/: the installed ``valueloss_app``, else this checkout."""
    spec = importlib.util.find_spec("valueloss_app")
    candidates = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    candidates.append(Path(__file__).resolve().parents[2])
    for folder in candidates:
        if (folder / "app.py").is_file() and (folder / "pages").is_dir():
            return folder
    raise FileNotFoundError(f"no app.py with pages/ beside it in {', '.join(map(str, candidates))}")


def main(argv: list[str] | None = None) -> int:
    """Run the app; extra arguments go to ``streamlit run`` (e.g. ``--server.port 8600``)."""
    if importlib.util.find_spec("streamlit") is None:
        print('valueloss-app needs the app extra: pip install "valueloss[app]"', file=sys.stderr)
        return 2
    folder = app_folder()
    args = sys.argv[1:] if argv is None else argv
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(folder / "app.py"), *args], cwd=folder)


if __name__ == "__main__":
    raise SystemExit(main())
