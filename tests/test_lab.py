"""`make lab`, as the README gives it, starts JupyterLab and serves the notebooks (as root too:
JupyterLab refuses root without --allow-root, which the Makefile adds only for root)."""
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from approxlib.report import NOTEBOOKS, REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_notebooks(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / ".installed").is_file():  # make would set up a virtualenv of its own
        pytest.skip("not running in the virtualenv `make setup` made")
    port, token = free_port(), secrets.token_hex(8)
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.Popen(["make", "-s", "lab", f"VENV={venv}", f"LAB_ARGS={args}"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    try:
        deadline, listing = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/contents/",
                                 headers={"Authorization": f"token {token}"}, timeout=2)
                if r.status_code == 200:
                    listing = r.json()
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert listing is not None, (f"make lab exited {proc.poll()} or did not answer in 90 s: "
                                     f"{proc.stderr.read().decode()[-500:] if proc.poll() else ''}")
        names = sorted(c["name"] for c in listing["content"] if c["type"] == "notebook")
        assert [n[0] for n in names] == [p.name[0] for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
        lab = requests.get(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
