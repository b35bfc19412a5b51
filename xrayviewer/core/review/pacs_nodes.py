"""The PACS nodes the user configured: the only machines the app ever connects to.

Kept as JSON (`pacs_nodes.json`) in the user's data folder, beside the review store; written atomically. A node
is named on the command line either by its configured name or as `AET@HOST:PORT`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.store import default_db_path

NODES_FILE = "pacs_nodes.json"
CACHE_FOLDER = "pacs-cache"
DEFAULT_AET = "XRAYVIEWER"
ADDRESS = re.compile(r"^(?P<aet>[^@\s\\]{1,16})@(?P<host>[^:@\s]+):(?P<port>\d{1,5})$")
AET_CHARS = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE title: 16 printable characters, no backslash


@dataclass(frozen=True)
class Node:
    """A DICOM peer: its name in the settings, AE title, host and port."""

    name: str
    aet: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.address if self.name == self.address else f"{self.name} ({self.address})"


def data_folder() -> Path:
    """The user's data folder: where the review store lives by default (see `store.default_db_path`)."""
    return default_db_path().parent


def nodes_path() -> Path:
    return data_folder() / NODES_FILE


def cache_folder() -> Path:
    """Where films received from a PACS are kept (names chosen here, never taken from the network)."""
    return data_folder() / CACHE_FOLDER


def parse_address(text: str, name: str | None = None) -> Node:
    """`AET@HOST:PORT` as a node (named `name`, else by its address)."""
    match = ADDRESS.match(text.strip())
    if not match or not 0 < int(match["port"]) < 65536 or not AET_CHARS.match(match["aet"]):
        raise XRayViewerError(None, f"'{text}' is not a PACS node",
                              "give a configured node's name or AET@HOST:PORT (AE title of up to 16 characters)")
    node = Node("", match["aet"], match["host"], int(match["port"]))
    return Node(name or node.address, node.aet, node.host, node.port)


def load_nodes(path: Path | None = None) -> dict[str, Node]:
    """The configured nodes by name ({} when none are)."""
    path = path or nodes_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {n["name"]: Node(str(n["name"]), str(n["aet"]), str(n["host"]), int(n["port"])) for n in raw}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise XRayViewerError(path, "cannot read the PACS nodes", str(exc),
                              "Fix or delete the file; the nodes can be added again.") from None


def save_nodes(nodes: dict[str, Node], path: Path | None = None) -> None:
    """Write the nodes atomically (a crash leaves the old list or the new one)."""
    path = path or nodes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps([asdict(n) for n in nodes.values()], indent=1), encoding="utf-8")
    os.replace(temporary, path)


def add_node(name: str, address: str, path: Path | None = None) -> Node:
    """Add (or replace) the node `name` at `AET@HOST:PORT`."""
    if not name.strip() or "@" in name:
        raise XRayViewerError(None, f"'{name}' cannot name a PACS node", "use a short name without '@'")
    node = parse_address(address, name.strip())
    nodes = load_nodes(path)
    nodes[node.name] = node
    save_nodes(nodes, path)
    return node


def remove_node(name: str, path: Path | None = None) -> None:
    nodes = load_nodes(path)
    if name not in nodes:
        raise XRayViewerError(None, f"no PACS node named '{name}'", f"configured: {', '.join(nodes) or 'none'}")
    del nodes[name]
    save_nodes(nodes, path)


def resolve_node(text: str, path: Path | None = None) -> Node:
    """A configured node's name, else `AET@HOST:PORT`."""
    nodes = load_nodes(path)
    if text in nodes:
        return nodes[text]
    if "@" not in text:
        raise XRayViewerError(None, f"no PACS node named '{text}'",
                              f"configured: {', '.join(nodes) or 'none'}; or give AET@HOST:PORT")
    return parse_address(text)
