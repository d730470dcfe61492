"""Flow files: reading one (JSON, errors naming the file), checking that it is a valid flow, and
storing flows as new versions of an org's flow (`flow-engine validate`, `simulate`, `graph`,
`flows load`). Errors are `InvalidFlow` or another FlowEngineError, each one line to show as it is."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flow_engine.core.graph import Flow, parse_flow
from flow_engine.errors import FlowEngineError, InvalidFlow


def read_graph(path: str) -> Any:
    """A flow file's JSON, or InvalidFlow naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidFlow(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidFlow(f"{path}: not valid JSON: {exc}") from None


def valid_flow(path: str, graph: Any = None, **parse: Any) -> Flow:
    """The flow of a file (or of `graph`, read from it), or InvalidFlow listing its problems."""
    flow = parse_flow(read_graph(path) if graph is None else graph, **parse)
    if flow.problems:
        raise InvalidFlow(f"{path} is not a valid flow:\n" + "\n".join(flow.problems))
    return flow


def checked_graphs(files: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(file, graph) of each file, all checked before any is used: all or nothing."""
    graphs = []
    for file in files:
        graph = read_graph(file)
        if not isinstance(graph, dict):
            raise InvalidFlow(f"{file}: a flow is a JSON object, got {type(graph).__name__}")
        valid_flow(file, graph)
        graphs.append((file, graph))
    return graphs


def store_graphs(database_url: str, org: str, graphs: Sequence[tuple[str, dict[str, Any]]], *, name: str | None,
                 activate: bool, if_changed: bool) -> Iterator[str]:
    """Store each graph as a new version of the org's flow; yields one line per file as it is stored."""
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    from flow_engine.adapters import schema
    from flow_engine.adapters.db import make_engine
    from flow_engine.adapters.store import store_flow

    engine = make_engine(database_url)
    try:
        schema.require(engine, schema.FLOWS)
        for file, graph in graphs:
            flow_name = name or graph.get("name") or Path(file).stem
            flow_id, version, stored = store_flow(engine, org, graph, name=flow_name, activate=activate,
                                                  created_by="cli", if_changed=if_changed)
            state = "active" if activate else "draft"
            done = "stored" if stored else "unchanged"
            yield f"{file}: flow {flow_id} ({flow_name!r} v{version}) {done} for org {org}, {state}"
    except IntegrityError as exc:
        # The platform's flows.org_id references organizations: an org it does not know is refused.
        raise FlowEngineError(f"org {org!r}: the database refused the flow ({schema.one_line(exc)}); "
                              "is the org in the platform's organizations table?") from None
    except SQLAlchemyError as exc:
        raise FlowEngineError(f"database at {schema.safe_url(engine)}: cannot store the flow: "
                              f"{schema.one_line(exc)}") from None
    finally:
        engine.dispose()
