"""JupyterLab starts headless on loopback and serves the five notebooks."""
import secrets
import socket
import subprocess
import sys
import time

import requests

from approxlib.report import NOTEBOOKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_lists_the_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(8)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.token={token}", "--allow-root",
           f"--ServerApp.root_dir={NOTEBOOKS}"]
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline, listing = time.time() + 60, None
        while time.time() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/contents/",
                                 headers={"Authorization": f"token {token}"}, timeout=2)
                if r.status_code == 200:
                    listing = r.json()
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer within 60 s"
        names = sorted(c["name"] for c in listing["content"] if c["type"] == "notebook")
        assert [n[0] for n in names] == list("ABCDEFGH")
        lab = requests.get(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
