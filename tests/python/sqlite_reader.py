"""Runs SQL on a SQLite file for the tests, in a process of its own.

The engine's SQLite and Python's sqlite3 are two copies of SQLite. In one process
they would drop each other's POSIX locks (SQLite's "multiple copies of SQLite"
hazard), so the tests never open the engine's file with sqlite3 in-process.
Protocol: one JSON request per line, {"path", "sql", "params"}; one JSON answer per line.
"""

import json
import sqlite3
import sys

for line in sys.stdin:
    req = json.loads(line)
    try:
        conn = sqlite3.connect(req["path"])
        try:
            with conn:
                rows = conn.execute(req["sql"], req["params"]).fetchall()
        finally:
            conn.close()
        answer = {"rows": rows}
    except Exception as e:  # reported to the test, which raises it
        answer = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
