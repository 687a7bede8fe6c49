"""`FolderSource`: any folder tree of image files (`--dataset=/data/illustrations`, or
"folder:PATH"); ids are the file paths relative to the folder."""

from __future__ import annotations

import os

from keras_dcgan.data.decode import decode_file
from keras_dcgan.data.sources.base import _IdSource
from keras_dcgan.errors import UserError


class FolderSource(_IdSource):
    """Every file under a folder (recursively, hidden files and folders excepted), ids are paths
    relative to it. Non-image files are skipped and counted like corrupt ones."""

    kind = "folder"

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise UserError(f"Image folder {root!r} does not exist or is not a folder.")
        super().__init__(root)
        self.root = os.path.abspath(root)
        self._ids = None

    def all_ids(self) -> list[str]:
        """Every file, walked in sorted order. Symbolic links are followed, but each real
        folder only once (the first path that reaches it, in that order): a link loop, or two
        links to one folder, neither hangs the listing nor lists its files twice."""
        if self._ids is None:
            ids = []
            seen = set()
            root = os.stat(self.root)
            seen.add((root.st_dev, root.st_ino))
            for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
                kept = []
                for d in sorted(dirnames):
                    if d.startswith("."):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, d))
                    except OSError:  # a broken link, or no permission
                        continue
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        kept.append(d)
                dirnames[:] = kept
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    path = os.path.join(dirpath, name)
                    if os.path.isfile(path):
                        ids.append(os.path.relpath(path, self.root))
            self._ids = ids
        return self._ids

    def read(self, item_id: str) -> bytes:
        with open(os.path.join(self.root, item_id), "rb") as f:
            return f.read()

    def _decode(self, item_id: str, image_size: int, channels: int, small_images: str):
        # Read as decoded: the header decides first (a 1.5 GB non-image costs a few bytes).
        return decode_file(os.path.join(self.root, item_id), image_size, channels, small_images,
                           self.max_pixels)  # fmt: skip

    def fingerprint(self) -> str:
        return f"folder:{self.root}"
