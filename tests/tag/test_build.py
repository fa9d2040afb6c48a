"""Guards on the committed tag artefacts that need no browser. The full
rebuild-and-compare check is tag/scripts/check.sh (it needs node)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TAG_JS = ROOT / "collector" / "static" / "tag.js"
SNIPPET = ROOT / "tag" / "snippet.html"
SERVED_SNIPPET = ROOT / "collector" / "static" / "snippet.html"
BUDGET_GZIP_BYTES = 5120  # SPEC §11


def test_tag_is_within_its_size_budget() -> None:
    assert len(gzip.compress(TAG_JS.read_bytes(), compresslevel=9)) <= BUDGET_GZIP_BYTES


def test_tag_names_its_version_from_package_json() -> None:
    version = json.loads((ROOT / "tag" / "package.json").read_text())["version"]
    assert f'name:"magpie.js",version:"{version}"' in TAG_JS.read_text()


def test_served_snippet_is_the_template() -> None:
    assert SERVED_SNIPPET.read_bytes() == SNIPPET.read_bytes()


def test_snippet_has_its_placeholders_and_loads_the_tag() -> None:
    text = SNIPPET.read_text()
    assert text.count("{{WRITE_KEY}}") == 1
    # The server swaps "{{HOST}}/tag.js" for the content-hashed path.
    assert '"{{HOST}}/tag.js"' in text
    assert re.search(r'\.load\("\{\{WRITE_KEY\}\}"\)', text)


def test_snippet_stub_covers_the_public_methods() -> None:
    text = SNIPPET.read_text()
    methods = re.search(r'"([a-zA-Z ]+)"\.split\(" "\)', text)
    assert methods is not None
    assert set(methods.group(1).split()) >= {
        "track",
        "page",
        "identify",
        "group",
        "alias",
        "reset",
        "ready",
        "consent",
        "optIn",
        "optOut",
    }
