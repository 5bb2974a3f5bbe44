"""`marketo-sandbox serve ...` and `marketo-sandbox dump KIND --db PATH`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from marketo_sandbox.app import DEFAULT_MUNCHKIN_ID
from marketo_sandbox.chaos import parse_spec
from marketo_sandbox.state import state_of


def _api_user(text: str) -> dict[str, str]:
    client_id, sep, secret = text.partition(":")
    if not sep or not client_id or not secret:
        raise argparse.ArgumentTypeError("expected CLIENT_ID:CLIENT_SECRET")
    return {"client_id": client_id, "client_secret": secret}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _fault(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("expected PATH_GLOB:KIND[:COUNT]")
    return {"path": parts[0], "kind": parts[1], "count": int(parts[2]) if len(parts) == 3 else 1}  # noqa: PLR2004


def _chaos(text: str) -> str:
    try:
        parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected RATE[:SEED]: {exc}") from None
    return text


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="marketo-sandbox", description="A local Marketo (REST, Bulk, Data Ingestion)."
    )
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sandbox server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--db", required=True, help="SQLite file (created if missing; kept)")
    serve.add_argument("--munchkin-id", default=DEFAULT_MUNCHKIN_ID)
    serve.add_argument("--client-id", default="sandbox-client")
    serve.add_argument("--client-secret", default="sandbox-secret")
    serve.add_argument(
        "--api-user", type=_api_user, action="append", default=[],
        metavar="ID:SECRET", help="another API user (repeatable)",
    )  # fmt: skip
    serve.add_argument("--seed", choices=["demo"], default=None, help="seed the demo data once")
    serve.add_argument("--members", type=int, default=0, help="generate N program members once")
    serve.add_argument("--time-scale", type=float, default=1.0, help="sandbox seconds per second")
    serve.add_argument("--strict", action="store_true", help="Marketo's real REST limits")
    serve.add_argument("--options", type=_json_object, default=None, help="JSON run-time options")
    serve.add_argument(
        "--fault", type=_fault, action="append", default=[], metavar="PATH_GLOB:KIND[:COUNT]",
        help="arm a fault at start-up (repeatable)",
    )  # fmt: skip
    serve.add_argument(
        "--chaos", type=_chaos, default=None, metavar="RATE[:SEED]",
        help="chaos mode: random real-Marketo faults on RATE of calls (0.05 or 5%%), seeded",
    )  # fmt: skip
    serve.add_argument("--log-level", default="warning")
    dump = sub.add_parser("dump", help="print what a sandbox db holds, as JSON lines")
    dump.add_argument("kind", help="leads, program_members, fields, calls, or a bulk kind")
    dump.add_argument("--db", required=True)
    dump.add_argument("--program-id", type=int, default=None)
    return top


def serve(args: argparse.Namespace) -> int:
    """Seed if asked, then run uvicorn until stopped."""
    import uvicorn  # noqa: PLC0415 - only the serve command needs it

    from marketo_sandbox import seed  # noqa: PLC0415
    from marketo_sandbox.app import create_app  # noqa: PLC0415

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    users = [{"client_id": args.client_id, "client_secret": args.client_secret}, *args.api_user]
    config = {
        "db_path": str(Path(args.db)),
        "munchkin_id": args.munchkin_id,
        "api_users": users,
        "time_scale": args.time_scale,
        "strict": args.strict,
        "options": args.options or {},
        "seed": args.seed,
        "members": args.members,
        "chaos": args.chaos,
    }
    app = create_app(config)
    seed.apply(state_of(app).store, args.seed, args.members)
    for fault in args.fault:
        state_of(app).faults.inject(fault["path"], fault["kind"], count=fault["count"])
    base_url = f"http://{args.host}:{args.port}"
    print(f"Marketo sandbox serving at {base_url}", flush=True)  # noqa: T201
    print(  # noqa: T201
        f"munchkin id {args.munchkin_id}; API user client_id={args.client_id} "
        f"(+{len(args.api_user)} more); client secret not shown",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # uvicorn's access log would print query strings (tokens); ours redacts
        h11_max_incomplete_event_size=1024 * 1024,  # long URIs reach us, to answer 414 ourselves
        timeout_graceful_shutdown=5,
    )
    return 0


def dump(args: argparse.Namespace) -> int:
    """Print rows of a kind as JSON lines."""
    from marketo_sandbox.admin import dump_kinds  # noqa: PLC0415
    from marketo_sandbox.app import family_dumps, open_store  # noqa: PLC0415

    if not Path(args.db).exists():
        print(f"marketo-sandbox dump: no database at {args.db}", file=sys.stderr)  # noqa: T201
        return 2
    store = open_store(args.db)
    dumps = family_dumps()
    if args.kind == "program_members":
        rows = store.members.iter_dump(args.program_id)
    elif args.kind in dumps:
        rows = dumps[args.kind](store)
    else:
        print(  # noqa: T201
            f"marketo-sandbox dump: unknown kind {args.kind!r}; one of "
            + ", ".join(dump_kinds(dumps)),
            file=sys.stderr,
        )
        return 2
    out = sys.stdout
    try:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        out.flush()
    except BrokenPipeError:  # `... | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `marketo-sandbox` command."""
    args = parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return dump(args)


if __name__ == "__main__":
    sys.exit(main())
