"""`veil audit`: prove the audit log's hash chain, and read it.

``veil audit verify --db PATH`` exits 0 when every entry links to the one before and none was
changed, and 1 naming the first entry that was changed, deleted or reordered. A keyed (HMAC)
log needs the key: ``--key-file`` (the master key file, or a key file of its own) or
``--key-params`` with the passphrase (prompted, or from the environment variable
``VEIL_PASSPHRASE``). The database is opened read-only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from veil.cli.errors import fail
from veil.core.errors import UsageError, VeilError
from veil.vault.audit import AuditLog, audit_key_from
from veil.vault.db import Database
from veil.vault.keys import MasterKey

audit_app = typer.Typer(
    name="audit",
    help=(
        "Check and read the audit log (logins, configuration changes, unmasked views, "
        "decryptions, exports, user changes).\n\nExample: veil audit verify --db data/"
    ),
    no_args_is_help=True,
)

_DB_HELP = "The gateway's database: its veil.db file or its data folder."


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    app.add_typer(audit_app, name="audit")


def _hmac_key(key_file: Path | None, key_params: Path | None) -> bytes | None:
    if key_file is not None and key_params is not None:
        raise UsageError(
            "--key-file and --key-params both given", hint="pass the one the gateway uses"
        )
    if key_file is not None:
        return audit_key_from(MasterKey.from_key_file(key_file))
    if key_params is not None:
        passphrase = os.environ.get("VEIL_PASSPHRASE") or typer.prompt(
            "Vault passphrase", hide_input=True
        )
        return audit_key_from(MasterKey.from_passphrase(passphrase, key_params))
    return None


def _open(
    db_path: Path, key_file: Path | None, key_params: Path | None
) -> tuple[Database, AuditLog]:
    key = _hmac_key(key_file, key_params)
    db = Database(Database.resolve_path(db_path), readonly=True)
    return db, AuditLog(db, hmac_key=key)


_KEY_FILE = typer.Option(
    None, "--key-file", help="Key file whose derived key signs a keyed (HMAC) audit log."
)
_KEY_PARAMS = typer.Option(
    None,
    "--key-params",
    help="Key-parameters file of a passphrase master key (passphrase from VEIL_PASSPHRASE or "
    "a prompt).",
)


@audit_app.command("verify")
def verify_command(
    db: Path = typer.Option(..., "--db", help=_DB_HELP, show_default=False),
    key_file: Path | None = _KEY_FILE,
    key_params: Path | None = _KEY_PARAMS,
    head: str | None = typer.Option(
        None,
        "--head",
        help="An anchor SEQ:HASH recorded earlier (from 'veil audit show'); also catches "
        "deletion of the newest entries.",
    ),
) -> None:
    """Prove the audit log's hash chain: exit 0 if intact, 1 naming the first bad entry.

    Example: veil audit verify --db data/ --head 1520:9f86d08...
    """
    expected: tuple[int, str] | None = None
    try:
        if head is not None:
            seq_text, _, hash_text = head.partition(":")
            if not seq_text.isdigit() or len(hash_text) != 64:
                raise UsageError(
                    f"--head {head!r} is not SEQ:HASH", hint="copy it from 'veil audit show'"
                )
            expected = (int(seq_text), hash_text.lower())
        database, log = _open(db, key_file, key_params)
        try:
            result = log.verify_chain(expected_head=expected)
        finally:
            database.close()
    except VeilError as error:
        fail(error)
    if result.ok:
        typer.echo(str(result))
        return
    typer.echo(str(result))
    if result.first_bad_seq is not None:
        typer.echo(f"first bad entry: {result.first_bad_seq}")
    raise typer.Exit(code=1)


@audit_app.command("show")
def show_command(
    db: Path = typer.Option(..., "--db", help=_DB_HELP, show_default=False),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many entries, newest first."),
    action: str | None = typer.Option(
        None, "--action", help="Only this action, e.g. unmask.start or login.failure."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Print the newest audit entries (not verified: run 'veil audit verify' for that).

    Example: veil audit show --db data/ --limit 50 --action unmask.start
    """
    try:
        database = Database(Database.resolve_path(db), readonly=True)
        try:
            entries = AuditLog(database).entries(limit=limit, action=action)
        finally:
            database.close()
    except VeilError as error:
        fail(error)
    if not entries:
        typer.echo("the audit log is empty")
        return
    for entry in entries:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "seq": entry.seq,
                        "time": entry.time.isoformat(),
                        "actor": entry.actor,
                        "action": entry.action,
                        "target": entry.target,
                        "details": entry.details,
                        "hash": entry.hash,
                    },
                    sort_keys=True,
                )
            )
        else:
            typer.echo(entry.summary())
    newest = entries[0]
    if not as_json and action is None:
        typer.echo(f"head (anchor for --head): {newest.seq}:{newest.hash}")
