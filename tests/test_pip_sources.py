"""tools/pip_sources.py: pip's configured package sources become the same flags for uv."""
import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "pip_sources", Path(__file__).resolve().parents[1] / "tools" / "pip_sources.py")
pip_sources = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(pip_sources)


def test_every_source_once_in_order():
    listing = "\n".join([
        ":env:.cert='/etc/ssl/certs/ca.crt'",
        ":env:.find-links='/opt/wheels'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
        "global.find-links='/opt/wheels'",
        "user.index-url='https://mirror.example/simple'",
    ])
    assert pip_sources.sources(listing) == [
        "--find-links", "/opt/wheels",
        "--constraint", "/etc/xdg/pip/constraints.txt",
        "--extra-index-url", "file:///opt/a/simple",
        "--extra-index-url", "file:///opt/b/simple",
        "--index-url", "https://mirror.example/simple",
    ]


def test_offline_by_configuration_stays_offline():
    listing = "global.no-index='true'\n:env:.no-index='1'\nglobal.find-links='/opt/wheels'"
    assert pip_sources.sources(listing) == ["--no-index", "--find-links", "/opt/wheels"]
    assert pip_sources.sources("global.no-index='false'") == []


def test_nothing_configured_gives_no_flags():
    assert pip_sources.sources("") == []
    assert pip_sources.sources("global.timeout='60'\nno equals sign here") == []
