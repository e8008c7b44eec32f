"""Files written so that nothing is lost: a temporary name, then an atomic rename.

Every file the package writes (datasets, checkpoints' metadata, metrics, results) goes through
:func:`atomic_write`: a failed or killed write leaves the previous good file intact.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp)`` on a temporary file beside ``path``, fsyncs it, then renames it over
    ``path`` (atomic on POSIX): a failed or killed write leaves the previous file intact and no
    temporary file behind.

    Args:
      path: the file to publish (written at exactly this path).
      write: ``write(tmp_path)`` writes the whole content to ``tmp_path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; publish an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
