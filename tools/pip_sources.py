"""Print uv's flags for the package sources pip is configured with.

`make` installs the main virtualenv with uv (PyTorch's five gigabytes of wheels unpack in
parallel: 11 s against pip's 49 s here), but uv reads no pip.conf. A machine whose PyTorch lies in
a local index or folder names it in pip's configuration (pip.conf, PIP_* variables): this passes
the same sources on, so both installers see the same packages. Output: the flags separated by
spaces (pip splits each value on whitespace, so no item holds any), or nothing where pip is not
configured. Run it with the virtualenv's own interpreter, which has pip.
"""
import ast
import subprocess
import sys

FLAGS = {  # pip option -> uv flag; each takes one or more whitespace-separated values
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def sources(listing: str) -> list[str]:
    """uv's flags from `pip config list` output (lines `scope.option='value'`), deduplicated."""
    flags: list[str] = []
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        on = sep and ast.literal_eval(value).lower() in ("1", "true", "yes", "on")
        if option == "no-index" and on and "--no-index" not in flags:
            flags.append("--no-index")  # offline by configuration
        if not sep or option not in FLAGS:
            continue
        for item in ast.literal_eval(value).split():
            pair = [FLAGS[option], item]
            if not any(flags[i:i + 2] == pair for i in range(0, len(flags), 2)):
                flags += pair
    return flags


def main() -> None:
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                             capture_output=True, text=True, check=True).stdout
    print(" ".join(sources(listing)))


if __name__ == "__main__":
    main()
