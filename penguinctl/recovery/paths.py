"""Where recovery keeps its one secret in the secrets backend.

One function, so the path layout (``platform/...`` versus tenant paths) is decided in one place.
The escrow itself does not depend on the layout: it exports every path under the backend's prefix.
"""

from __future__ import annotations


def recovery_path() -> str:
    """The recovery key's public half (``recipient``) and, for a passphrase key, its private half
    sealed with the passphrase (``sealed_identity``). Nothing here opens an escrow by itself."""
    from penguinctl.secret_paths import recovery

    return recovery("key")
