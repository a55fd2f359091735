"""Files the local SPCS keeps, written whole or not at all."""

import os
from pathlib import Path


def write(file: Path, data: bytes, mode: int = 0o644) -> None:
    """A crash leaves the old file or the new one, and the file has its mode from the start: a secret or a
    key is never readable by others, even briefly."""
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(file.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.chmod(partial, mode)  # whatever the umask took away
    partial.replace(file)
