"""Kernia 0.1.0's session check on the same FastAPI endpoint as bench/me_app.py, on SQLite:
python kernia_me_app.py DB_PATH PORT, in bench/.venv-kernia (bench/session_check.py)."""

import sys

import uvicorn
from fastapi import Depends, FastAPI
from kernia_app import build
from kernia_fastapi import mount_kernia, require_session

db_path, port = sys.argv[1], int(sys.argv[2])
app = FastAPI()
mount_kernia(app, build(db_path, port))


@app.get("/me")
async def me(session=Depends(require_session)) -> dict:
    return {"id": session.user_id, "anonymous": True}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
