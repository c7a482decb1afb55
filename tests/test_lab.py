"""`make lab`, as the README gives it, starts JupyterLab and serves the notebooks, for root and
for an ordinary user alike (JupyterLab refuses root without --allow-root, which the Makefile
adds only for root)."""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from approxlib.report import NOTEBOOKS, REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# This container's interpreter lives under /root (mode 700): an ordinary user there keeps the
# capability to read and write past file modes, which no check of `make lab` or JupyterLab
# consults (both ask for the user id), so the run differs from root's only in what is tested.
KERNEL = "share/jupyter/kernels/approx-cnn"  # what `make lab` installs into the virtualenv
ORDINARY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=+dac_override,+dac_read_search",
            "--ambient-caps=+dac_override,+dac_read_search"]


def as_user(who: str) -> list[str]:
    """The command prefix that runs `make lab` as `who` ("root" or "ordinary"), or a skip where
    this process cannot become that user."""
    root = os.geteuid() == 0
    if who == "root" and not root:
        pytest.skip("only root can run as root")
    if who == "ordinary" and root:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to run as an ordinary user")
        return ORDINARY
    return []


@pytest.mark.parametrize("who", ["root", "ordinary"])
def test_make_lab_serves_the_notebooks(who):
    venv = Path(sys.prefix)
    if not (venv / ".installed").is_file():  # make would set up a virtualenv of its own
        pytest.skip("not running in the virtualenv `make setup` made")
    prefix = as_user(who)
    planned = subprocess.run([*prefix, "make", "-s", "-n", "lab", f"VENV={venv}"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    assert ("--allow-root" in planned) == (who == "root")  # the flag only where it is needed
    home = Path(tempfile.mkdtemp(prefix="lab-home-"))  # pytest's folders are root's alone
    os.chmod(home, 0o777)
    port, token = free_port(), secrets.token_hex(8)
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "HOME": str(home)}
    proc = subprocess.Popen([*prefix, "make", "-s", "lab", f"VENV={venv}", f"LAB_ARGS={args}"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
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
        shutil.rmtree(home, ignore_errors=True)
        if prefix and (venv / KERNEL).exists():  # the ordinary user's kernel spec: root's again
            for f in [venv / KERNEL, *(venv / KERNEL).rglob("*")]:
                os.chown(f, 0, 0)
