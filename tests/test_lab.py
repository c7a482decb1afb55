"""`make lab`, as the README gives it, starts JupyterLab and serves the notebooks, run by root and
by a user whose id is not 0 (JupyterLab refuses root without --allow-root, which the Makefile
adds only for root): both read the user id, which is what this tests."""
import json
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


# Run by root, the "ordinary" case is uid 65534 keeping CAP_DAC_OVERRIDE: this container's
# interpreter lives under /root (mode 700) and the virtualenv is root's, so a plain uid 65534
# could not start Python at all. Neither the Makefile nor JupyterLab looks at capabilities,
# only at the user id; file permissions are not what this test is about.
NOBODY = 65534
ORDINARY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=+dac_override", "--ambient-caps=+dac_override"]


def as_user(who: str) -> list[str]:
    """The command prefix that runs `make lab` as `who` ("root" or "ordinary"), or a skip where
    this process cannot become that user."""
    root = os.geteuid() == 0
    if who == "root" and not root:
        pytest.skip("only root can run as root")
    if who == "ordinary" and root:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to run as an ordinary user")
        if subprocess.run([*ORDINARY, "true"], capture_output=True).returncode != 0:
            pytest.skip("this container does not let setpriv keep CAP_DAC_OVERRIDE")
        return ORDINARY
    return []


def stop(proc: subprocess.Popen) -> None:
    """The server and everything `make` started, gone whether or not it is still running."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.parametrize("who", ["root", "ordinary"])
def test_make_lab_serves_the_notebooks(who):
    venv = Path(sys.prefix)
    if not (venv / ".installed").is_file():  # make would set up a virtualenv of its own
        pytest.skip("not running in the virtualenv `make setup` made")
    prefix = as_user(who)
    planned = subprocess.run([*prefix, "make", "-s", "-n", "lab", f"VENV={venv}"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    assert ("--allow-root" in planned) == (who == "root")  # the flag only where it is needed
    home = Path(tempfile.mkdtemp(prefix="lab-home-"))  # the user's own, as HOME is
    if prefix:
        os.chown(home, NOBODY, NOBODY)
    try:
        _serve(prefix, venv, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _serve(prefix: list[str], venv: Path, home: Path) -> None:
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
                                     f"{proc.stderr.read().decode()[-500:] if proc.poll() is not None else ''}")
        names = sorted(c["name"] for c in listing["content"] if c["type"] == "notebook")
        assert [n[0] for n in names] == [p.name[0] for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
        lab = requests.get(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        # each notebook opens on a kernel the lab has, this virtualenv's interpreter (it named
        # "python3" while `make lab` installed a kernel of another name nothing used)
        specs = requests.get(f"http://127.0.0.1:{port}/api/kernelspecs",
                             headers={"Authorization": f"token {token}"}, timeout=5).json()
        for path in NOTEBOOKS.glob("*.ipynb"):
            name = json.loads(path.read_text())["metadata"]["kernelspec"]["name"]
            argv = specs["kernelspecs"][name]["spec"]["argv"]
            # "python": the server's own interpreter (jupyter_client puts sys.executable there),
            # the virtualenv's, which `make lab` starts JupyterLab from
            assert argv[0] in ("python", sys.executable), (path.name, argv)
    finally:
        stop(proc)


def test_make_report_passes_report_args_through():
    """Without Chromium or g++, the README's way out is `make report REPORT_ARGS=...`."""
    made = subprocess.run(["make", "-n", "report", "PROFILE=smoke",
                           "REPORT_ARGS=--no-pdf --set nncodec_qps=[]"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    # under `make test` this make is a sub-make, which adds "Entering directory" lines
    command = [ln for ln in made.stdout.splitlines() if "approx report --profile smoke" in ln]
    assert len(command) == 1 and command[0].endswith(" --no-pdf --set nncodec_qps=[]")
