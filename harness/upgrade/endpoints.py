"""What ``--upgrade-from`` / ``--upgrade-to`` name: a profile, a server binary, or on the
docker backend an image, resolved to an :class:`~harness.impl.Implementation` with the
same one-line errors as ``--impl``, ``--impl-binary`` and ``--image``."""

from __future__ import annotations

from pathlib import Path

from harness import impl as impls
from harness.errors import UsageError
from harness.impl import Implementation


def resolve_endpoint(text: str, backend: str, flag: str) -> Implementation:
    """``PROFILE`` (an installed binary of it), ``PATH`` (a server binary), ``IMAGE`` or
    ``PROFILE@IMAGE`` (docker: that profile's server inside the image; an image with
    two servers, such as the trixie image, needs the profile)."""
    profile, at, image = text.partition("@")
    looks_like_image = bool(at) or (":" in text and not Path(text).exists())
    if looks_like_image:
        if backend != "docker":
            raise UsageError(
                f"{flag} {text}: an image runs on --backend docker only; on {backend} give a "
                "profile or a server binary"
            )
        from harness.images import identify_image

        return identify_image(image if at else text, profile if at else None)
    if "/" in text or Path(text).exists():
        try:
            return impls.from_binary(text)
        except UsageError as exc:
            raise UsageError(str(exc).replace("--impl-binary", flag, 1)) from None
    try:
        return impls.from_name(text)
    except UsageError as exc:
        raise UsageError(str(exc).replace("--impl", flag, 1)) from None
