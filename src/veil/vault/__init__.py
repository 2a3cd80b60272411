"""The vault: encrypted originals, their keys, users and permissions, and the audit log.

* :mod:`veil.vault.keys`: the master key (Argon2id passphrase or key file).
* :mod:`veil.vault.segments`: AES-256-GCM segment files, streaming, retention.
* :mod:`veil.vault.db`: the SQLite database and its migrations.
* :mod:`veil.vault.users`: users, roles, scopes, sessions, API tokens, unmask grants.
* :mod:`veil.vault.audit`: the hash-chained audit log.
"""

from __future__ import annotations

from veil.vault.audit import (
    AuditAction,
    AuditChainError,
    AuditEntry,
    AuditLog,
    AuditVerification,
    config_diff,
)
from veil.vault.db import Database, DatabaseError
from veil.vault.keys import (
    KdfParams,
    KeyFileError,
    MasterKey,
    VaultError,
    WrongKeyError,
    check_key_location,
    create_key_file,
    create_passphrase_key,
)
from veil.vault.segments import (
    EncryptedSegmentWriter,
    SegmentCorruptError,
    SegmentId,
    SegmentMismatchError,
    decrypt_segment,
    encrypt_segment,
    iter_decrypt_segment,
    list_segments,
    prune,
)
from veil.vault.users import (
    ROLE_SCOPES,
    ApiTokens,
    AuthError,
    AuthSettings,
    CsrfError,
    LoginThrottledError,
    PermissionDeniedError,
    Principal,
    Role,
    Scope,
    SessionExpiredError,
    Sessions,
    UnmaskError,
    UnmaskGrant,
    UnmaskGrants,
    UserError,
    Users,
    require,
)

__all__ = [
    "ROLE_SCOPES",
    "ApiTokens",
    "AuditAction",
    "AuditChainError",
    "AuditEntry",
    "AuditLog",
    "AuditVerification",
    "AuthError",
    "AuthSettings",
    "CsrfError",
    "Database",
    "DatabaseError",
    "EncryptedSegmentWriter",
    "KdfParams",
    "KeyFileError",
    "LoginThrottledError",
    "MasterKey",
    "PermissionDeniedError",
    "Principal",
    "Role",
    "Scope",
    "SegmentCorruptError",
    "SegmentId",
    "SegmentMismatchError",
    "SessionExpiredError",
    "Sessions",
    "UnmaskError",
    "UnmaskGrant",
    "UnmaskGrants",
    "UserError",
    "Users",
    "VaultError",
    "WrongKeyError",
    "check_key_location",
    "config_diff",
    "create_key_file",
    "create_passphrase_key",
    "decrypt_segment",
    "encrypt_segment",
    "iter_decrypt_segment",
    "list_segments",
    "prune",
    "require",
]
