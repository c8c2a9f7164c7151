"""Redis database numbers (SELECT n) as Kvrocks >= 2.15 maps them onto namespaces.

With ``redis-databases N`` in kvrocks.conf (PR #3294), SELECT 0 stays in the default
namespace and SELECT n (1 <= n < N) switches to the namespace ``db<n>``.  Read off Kvrocks'
src/server/redis_connection.cc (CLIENT LIST shows ``db=<n>`` parsed back from the namespace)
and src/common/keyspace_events.cc (MapNamespaceToKeyspaceDB, tested with ``db1`` -> 1 and
``db15`` -> 15).  The data directory does not record the setting, so a namespace that merely
is called ``db3`` maps the same way: the number is what an operator using SELECT would know.
"""

from __future__ import annotations

from kvfix.codec.errors import CodecError
from kvfix.codec.keys import DEFAULT_NAMESPACE

#: kDatabaseNamespacePrefix.
DATABASE_NAMESPACE_PREFIX = b"db"


def database_of(namespace: bytes) -> int | None:
    """The SELECT number of a namespace: 0 for the default one, n for ``db<n>``, else None.

    Only the canonical spelling counts (no sign, no leading zero, n >= 1): that is what
    SELECT writes, so ``db01`` or ``db0`` are ordinary namespaces.
    """
    if namespace == DEFAULT_NAMESPACE:
        return 0
    if not namespace.startswith(DATABASE_NAMESPACE_PREFIX):
        return None
    digits = namespace[len(DATABASE_NAMESPACE_PREFIX) :]
    if not digits.isdigit() or digits[:1] == b"0" or len(digits) > 9:
        return None
    return int(digits)


def namespace_of(database: int) -> bytes:
    """The namespace SELECT ``database`` uses."""
    if database < 0:
        raise CodecError(f"database number {database} is negative")
    return DEFAULT_NAMESPACE if database == 0 else DATABASE_NAMESPACE_PREFIX + str(database).encode()
