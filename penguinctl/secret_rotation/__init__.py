"""Credential rotation (``penguinctl secrets rotate``): the contract in ``base``, the kinds in
``registry``, one module per kind (``dkim``, ``ssh``, ``mailbox``)."""

from penguinctl.secret_rotation.base import (
    ROTATED_AT,
    DueItem,
    Rotation,
    RotationContext,
    last_rotated,
    parse_time,
)

__all__ = ["ROTATED_AT", "DueItem", "Rotation", "RotationContext", "last_rotated", "parse_time"]
