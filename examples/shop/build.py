"""The example's setup step: installs the page's npm packages (the official better-auth
client and its passkey plugin) and bundles ``frontend/main.js`` into ``static/app.js`` with
esbuild. Nothing it downloads is committed; it runs again only when a source changed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRONTEND = HERE / "frontend"
BUNDLE = HERE / "static" / "app.js"


def _newest(*paths: Path) -> float:
    return max(p.stat().st_mtime for p in paths)


def ensure_built(*, quiet: bool = False) -> Path:
    """Builds the page's script when it is missing or older than its sources; returns it."""
    sources = [FRONTEND / "main.js", FRONTEND / "package.json", FRONTEND / "package-lock.json"]
    if BUNDLE.is_file() and BUNDLE.stat().st_mtime >= _newest(*sources):
        return BUNDLE
    if shutil.which("npm") is None:
        raise SystemExit("The shop's page needs Node.js and npm to build its script (https://nodejs.org).")
    out = subprocess.DEVNULL if quiet else None
    modules = FRONTEND / "node_modules"
    if not modules.is_dir() or modules.stat().st_mtime < _newest(FRONTEND / "package-lock.json"):
        print("shop: installing the page's npm packages (npm ci)", file=sys.stderr)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONTEND, check=True, stdout=out
        )
        modules.touch()
    print("shop: bundling frontend/main.js into static/app.js (esbuild)", file=sys.stderr)
    subprocess.run(["npm", "run", "--silent", "build"], cwd=FRONTEND, check=True, stdout=out, stderr=out)
    return BUNDLE


if __name__ == "__main__":
    ensure_built()
