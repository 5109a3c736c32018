"""Runs Kernia's own end-to-end tests against kernia-rs.

    python scripts/kernia_e2e.py PATH/TO/KERNIA [pytest arguments...]

PATH/TO/KERNIA is a checkout of advantch/kernia (tag v0.1.0). The test files are run
unmodified from there, with kernia-rs installed in this Python in place of Kernia, and
Kernia's test utilities (`packages/test_utils`) on the path. Their own dependencies
(pytest, SQLAlchemy with aiosqlite, FastAPI, httpx, cbor2, webauthn, lxml) are installed
into this Python when missing. The files are those of the features kernia-rs has;
docs/migrating.md says where kernia-rs differs from Kernia on the wire on purpose (Better
Auth's protocol wins), which tests that fails, and why.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

FILES = [
    "e2e/plugins/test_anonymous.py",
    "e2e/plugins/test_username.py",
    "e2e/plugins/test_magic_link.py",
    "e2e/plugins/test_rate_limit.py",
    "e2e/integration/test_email_password_flow.py",
    "e2e/integration/test_email_password_flow_sqlalchemy.py",
    "e2e/integration/test_core_routes.py",
    "e2e/integration/test_fastapi.py",
    "e2e/integration/test_starlette.py",
    "e2e/integration/test_passkey_softauth.py",
]
NEEDS = {
    "cbor2": "cbor2>=5",
    "webauthn": "webauthn>=2.7",
    "lxml": "lxml>=5",
    "pytest": "pytest>=8",
    "pytest_asyncio": "pytest-asyncio>=0.24",
    "sqlalchemy": "sqlalchemy[asyncio]>=2",
    "aiosqlite": "aiosqlite>=0.20",
    "httpx": "httpx>=0.27",
    "fastapi": "fastapi>=0.110",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    checkout = Path(argv[0]).resolve()
    utils = checkout / "packages" / "test_utils" / "src"
    missing = [f for f in FILES if not (checkout / f).is_file()]
    if not (utils / "kernia_test_utils").is_dir() or missing:
        what = missing or utils
        print(f"kernia_e2e: {checkout} is not a Kernia v0.1.0 checkout (missing: {what})", file=sys.stderr)
        return 2
    absent = [spec for module, spec in NEEDS.items() if importlib.util.find_spec(module) is None]
    if absent:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *absent], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(utils), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(checkout),
        "-c",
        str(checkout / "pyproject.toml"),
        "-o",
        "testpaths=",
        "-rs",
        *[str(checkout / f) for f in FILES],
        *argv[1:],
    ]
    return subprocess.run(cmd, env=env, cwd=checkout).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
