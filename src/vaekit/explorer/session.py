"""What the latent explorer shows, without the web server: one run, the examples it maps and every answer.

:func:`open_explorer` loads a run and encodes the data it maps (the test split of the run's own data, the
validation split when the test split is empty, or a source the user named on the command line); an
:class:`Explorer` then answers the page's questions (decode a latent code or a map point, an example with its
reconstruction, one dimension swept, the path between two examples) from that state only. Nothing here ever
opens a file named by a request: requests carry numbers (codes, indices, labels), checked here against the
run's sizes; a bad one raises :class:`BadRequest` with a one-line message (the app turns it into a 4xx).
"""

from __future__ import annotations

import base64
import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError

#: at most this many latent codes' worth of decoded examples per answer (interpolation, sweeps)
MAX_STEPS = 32
#: latent values the page may ask for: ±Z_LIMIT prior standard deviations
Z_LIMIT = 50.0
#: decoded images are enlarged (nearest neighbour) to at least this many pixels high
MIN_PIXELS = 96
#: an array run shows at most this many values of a decoded example
MAX_VALUES = 64


class BadRequest(ValueError):
    """A request the run cannot answer (an index out of range, a code of the wrong length, …): its message is
    one line for the page, and the server goes on serving."""


@dataclass
class MapData:
    """The mapped examples: inputs in data and model units, conditions, labels, posterior means and log-variances,
    2-D map coordinates and where they came from."""

    raw: torch.Tensor  # [N, *shape] data units (what the page shows as "the example")
    x: torch.Tensor  # [N, *shape] model units
    c: torch.Tensor | None  # [N, cond_dim] condition rows, or None
    y: torch.Tensor | None  # [N] label indices into ``classes`` (-1 unknown), or None
    classes: list[str] | None
    mu: torch.Tensor  # [N, L]
    logvar: torch.Tensor  # [N, L]
    xy: np.ndarray  # [N, 2]
    axis: str  # "z", "PC" or "t-SNE"
    source: str
    split: str  # "test", "validation" or "all"


def open_explorer(run: str | Path, data: str | None = None, method: str = "pca", limit: int = 2000) -> "Explorer":
    """Load ``run`` and map at most ``limit`` examples of ``data`` (all rows) or of the run's own test split
    (validation when the test split is empty), placed by ``method`` (pca/tsne) when the latent is not 2-D."""
    from ..api import load_vae

    if method not in ("pca", "tsne"):
        raise UsageError(f"--method must be pca or tsne, got {method!r}")
    if limit < 3:
        raise UsageError(f"--limit must be at least 3, got {limit}")
    trained = load_vae(run)  # a recommendation run is refused here, in one line
    source = data if data is not None else trained.config.data
    if source is None:
        raise UsageError(f"{run} does not record its data source; give the data to map with --data")
    ds = trained.load_data(source)
    split = "all"
    if data is None:  # the run's own data: split as in training, the test split (validation when empty)
        parts = trained.kind.split(ds, trained.config)
        part, split = (parts[2], "test") if len(parts[2]) else (parts[1], "validation")
        ds.x, ds.y, ds.attributes = part.x, part.y, part.a
    keep = slice(0, limit)
    ds.x = ds.x[keep]
    ds.y = None if ds.y is None else ds.y[keep]
    ds.attributes = None if ds.attributes is None else ds.attributes[keep]
    if len(ds.x) == 0:
        raise UsageError(f"{source} has no examples to map")
    _label_unknown(trained, ds)
    x, c = trained.dataset_inputs(ds)
    return Explorer(trained, _map_data(trained, ds, x, c, method, source, split))


def _label_unknown(trained: Any, ds: Any) -> None:
    """An M2 run encodes q(z|x, y): examples without a label get the classifier's most probable one."""
    cond = trained.conditioning
    if trained.classifier is None or cond is None or cond.kind != "label":
        return
    probs = trained.predict_proba(ds.x)
    predicted = probs.argmax(1)
    if ds.y is None:
        ds.y, ds.classes = predicted, list(cond.classes)
        return
    names = list(ds.classes) if ds.classes else list(cond.classes)
    unknown = ds.y < 0
    if bool(unknown.any()):
        # map the predicted class (an index into the run's classes) to an index into the data's classes
        lookup = torch.tensor([names.index(k) if k in names else -1 for k in cond.classes])
        ds.y = ds.y.clone()
        ds.y[unknown] = lookup[predicted[unknown]]


def _map_data(trained: Any, ds: Any, x: torch.Tensor, c: torch.Tensor | None, method: str, source: str,
              split: str) -> MapData:
    from ..evaluation.latent import project_2d
    from ..evaluation.metrics import posterior_stats

    mu, logvar = posterior_stats(trained.model, x, c=c)
    xy, axis = project_2d(mu, method)
    y = None if ds.y is None else ds.y.long().cpu()
    classes = list(ds.classes) if ds.classes else (None if y is None else [str(i) for i in range(int(y.max()) + 1)])
    return MapData(raw=torch.as_tensor(ds.x, dtype=torch.float32).cpu(), x=x, c=c, y=y, classes=classes,
                   mu=mu, logvar=logvar, xy=np.asarray(xy, dtype=np.float64), axis=axis, source=source, split=split)


class Explorer:
    """Answers the explorer page's questions about one trained run and the examples it maps (thread-safe:
    one model call at a time)."""

    def __init__(self, trained: Any, data: MapData):
        from ..evaluation.metrics import kl_per_dim

        self.trained = trained
        self.data = data
        self.lock = threading.Lock()
        self.kl = kl_per_dim(data.mu, data.logvar)
        self.kl_order = [int(i) for i in torch.argsort(self.kl, descending=True, stable=True)]
        self._inverse = self._map_inverse()

    # -- what the page needs to know ------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.trained.latent_dim

    @property
    def n(self) -> int:
        return len(self.data.mu)

    @property
    def view(self) -> str:
        """How decoded examples are shown: ``image`` (PNG), ``table`` (a row per example) or ``values``."""
        kind = self.trained.kind
        if kind.pictures and len(self.trained.shape) == 3 and self.trained.shape[0] in (1, 3):
            return "image"
        return "table" if kind.cells else "values"

    def condition_info(self) -> dict | None:
        """The condition the page must choose for a conditional run: label names, or attribute names with
        default values (the mapped data's medians, raw units)."""
        cond = self.trained.conditioning
        if cond is None or self.trained.model.cond_dim == 0:
            return None
        if cond.kind == "label":
            return {"kind": "label", "classes": list(cond.classes or [])}
        raw = cond.scaler.inverse_transform(self.data.c.cpu()) if self.data.c is not None else None
        defaults = [0.0] * cond.dim if raw is None else [float(v) for v in raw.median(0).values]
        return {"kind": "attributes", "columns": list(cond.columns or []), "defaults": defaults}

    def info(self) -> dict:
        """The page's set-up: the run, how examples are shown, the latent's KL order and the map's axes."""
        run = self.trained.run_dir
        return {
            "run": None if run is None else Path(run).name,
            "kind": self.trained.kind.name,
            "view": self.view,
            "family": "m2" if self.trained.classifier is not None else "vae",
            "latent_dim": self.latent_dim,
            "kl": [float(v) for v in self.kl],
            "kl_order": self.kl_order,
            "condition": self.condition_info(),
            "map": {"axis": self.data.axis, "invertible": self._inverse is not None, "n": self.n,
                    "source": self.data.source, "split": self.data.split},
            "limits": {"z": Z_LIMIT, "steps": MAX_STEPS},
            "columns": self.columns(),
        }

    def points(self) -> dict:
        """Map coordinates (rounded to 5 significant digits) and label indices of every mapped example."""
        xy = [[float(f"{a:.5g}"), float(f"{b:.5g}")] for a, b in self.data.xy.tolist()]
        labels = None if self.data.y is None else [int(v) for v in self.data.y]
        return {"xy": xy, "labels": labels, "classes": self.data.classes, "axis": self.data.axis}

    def columns(self) -> list[str] | None:
        """Column names of the shown values: the table's own columns (tables), value indices (arrays)."""
        if self.view == "image":
            return None
        if self.trained.schema is not None:
            return [c["name"] for c in self.trained.schema]
        cols = self.trained.info.get("data", {}).get("columns")
        if self.view == "table" and cols:
            return list(cols)
        size = int(np.prod(self.trained.shape))
        return [str(i) for i in range(min(size, MAX_VALUES))]

    # -- requests -------------------------------------------------------------------------------------
    def condition(self, label: int | None = None, attributes: list[float] | None = None,
                  example: int | None = None) -> torch.Tensor | None:
        """One condition row for a request: the label index or the attribute values it names, else the
        example's own condition; None for unconditional runs (which refuse a label)."""
        info = self.condition_info()
        if info is None:
            if label is not None or attributes is not None:
                raise BadRequest("this run is not conditional: drop label/attributes")
            return None
        cond = self.trained.conditioning
        if info["kind"] == "label":
            if attributes is not None:
                raise BadRequest("this run is conditioned on labels: give label, not attributes")
            if label is None:
                if example is None:
                    raise BadRequest(f"this run is conditional: give label (0..{cond.dim - 1})")
                return self.data.c[example: example + 1]
            if not 0 <= label < cond.dim:
                raise BadRequest(f"label must be between 0 and {cond.dim - 1} ({', '.join(cond.classes[:10])}), "
                                 f"got {label}")
            return cond.encode_raw(torch.tensor([label])).to(self.trained.device)
        if label is not None:
            raise BadRequest("this run is conditioned on attributes: give attributes, not label")
        if attributes is None:
            if example is None:
                raise BadRequest(f"this run is conditional: give attributes ({', '.join(cond.columns)})")
            return self.data.c[example: example + 1]
        if len(attributes) != cond.dim:
            raise BadRequest(f"attributes must hold {cond.dim} values ({', '.join(cond.columns)}), "
                             f"got {len(attributes)}")
        return cond.encode_raw(torch.tensor([attributes], dtype=torch.float32)).to(self.trained.device)

    def check_z(self, z: list[float]) -> torch.Tensor:
        """A latent code from a request as a ``[1, L]`` tensor, after checking its length and values."""
        if len(z) != self.latent_dim:
            raise BadRequest(f"z must hold {self.latent_dim} values (the latent size), got {len(z)}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= Z_LIMIT for v in z):
            raise BadRequest(f"z values must be finite numbers between -{Z_LIMIT:g} and {Z_LIMIT:g}")
        return torch.tensor([z], dtype=torch.float32)

    def check_index(self, i: int, what: str = "example") -> int:
        if not 0 <= i < self.n:
            raise BadRequest(f"{what} {i} does not exist: the map holds {self.n} examples (0..{self.n - 1})")
        return i

    def z_at(self, point: list[float]) -> tuple[torch.Tensor, int | None]:
        """The latent code at a map point: the point itself (2-D latent), its preimage on the plane of the
        first two principal components (PCA map), else the nearest mapped example's mean (and its index)."""
        if len(point) != 2 or not all(math.isfinite(v) and abs(v) <= 1e6 for v in point):
            raise BadRequest("point must be two finite map coordinates")
        p = np.asarray(point, dtype=np.float64)
        if self._inverse is not None:
            z = np.append(p, 1.0) @ self._inverse
            return torch.tensor(z[None, :self.latent_dim], dtype=torch.float32).clamp(-Z_LIMIT, Z_LIMIT), None
        i = int(np.argmin(((self.data.xy - p) ** 2).sum(1)))
        return self.data.mu[i: i + 1].clone(), i

    def _map_inverse(self) -> np.ndarray | None:
        """``[3, L]`` with z = [x, y, 1] @ inverse when the map is linear in z (the latent itself, or PCA: the
        least-squares fit of the means on the coordinates is exactly the mean plus the first two components),
        None for t-SNE (no inverse)."""
        L = self.latent_dim
        if self.data.axis == "z":
            inv = np.zeros((3, L))
            inv[0, 0] = 1.0
            if L == 2:
                inv[1, 1] = 1.0
            return inv
        if self.data.axis != "PC":
            return None
        a = np.concatenate([self.data.xy, np.ones((self.n, 1))], 1)
        return np.linalg.lstsq(a, self.data.mu.numpy().astype(np.float64), rcond=None)[0]

    # -- answers --------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, c: torch.Tensor | None) -> dict:
        """The mean of p(x|z[, c]) for ``z`` ``[n, L]`` in data units, rendered for the page."""
        with self.lock:
            cn = None if c is None else c.reshape(1, -1).repeat(len(z), 1)
            values = self.trained.decode(z, c=cn)
        return self.render(values)

    def example(self, i: int) -> dict:
        """Example ``i``: its label, posterior mean and standard deviations, the example and its reconstruction
        (the decoded posterior mean under its own condition)."""
        i = self.check_index(i)
        d = self.data
        item = self.render(d.raw[i: i + 1])
        label = None if d.y is None else int(d.y[i])
        rec = self.decode(d.mu[i: i + 1], None if d.c is None else d.c[i: i + 1])
        cond_label = None
        if d.c is not None and self.trained.conditioning.kind == "label":
            cond_label = int(d.c[i].argmax())
        return {"index": i, "label": label, "condition_label": cond_label,
                "z": [float(v) for v in d.mu[i]], "std": [float(v) for v in (0.5 * d.logvar[i]).exp()],
                "xy": [float(v) for v in d.xy[i]], "example": item, "reconstruction": rec}

    def traverse(self, z: torch.Tensor, dim: int, steps: int, span: float, c: torch.Tensor | None) -> dict:
        """Dimension ``dim`` swept over ±``span`` around ``z`` (the others fixed), decoded."""
        if not 0 <= dim < self.latent_dim:
            raise BadRequest(f"dim must be between 0 and {self.latent_dim - 1}, got {dim}")
        values = torch.linspace(-span, span, steps) + z[0, dim]
        path = z.repeat(steps, 1)
        path[:, dim] = values.clamp(-Z_LIMIT, Z_LIMIT)
        return {"values": [float(v) for v in path[:, dim]], **self.decode(path, c)}

    def interpolate(self, a: int, b: int, steps: int, method: str, c: torch.Tensor | None) -> dict:
        """``steps`` codes from example ``a``'s posterior mean to ``b``'s (linear, or spherical), decoded under
        ``c`` (for conditional runs: the chosen condition, else example ``a``'s)."""
        from ..evaluation.latent import lerp, slerp

        a, b = self.check_index(a, "a: example"), self.check_index(b, "b: example")
        z0, z1 = self.data.mu[a], self.data.mu[b]
        path = slerp(z0, z1, steps) if method == "spherical" else lerp(z0, z1, steps)
        return {"z": path.tolist(), **self.decode(path, c)}

    def render(self, values: torch.Tensor) -> dict:
        """Examples in data units → ``{"images": [base64 PNG…]}`` or ``{"columns", "rows"}`` (the table's own
        units; text columns as category names; arrays: the first values of each example)."""
        values = values.detach().cpu()
        if self.view == "image":
            return {"images": [_png(v) for v in values]}
        if self.trained.schema is not None:
            cols, cells = self.trained.table_cells(values)
            return {"columns": cols, "rows": cells.tolist()}
        flat = values.reshape(len(values), -1)[:, :MAX_VALUES].numpy()
        rows = [["" if math.isnan(v) else f"{v:.5g}" for v in row] for row in flat.tolist()]
        out = {"columns": self.columns(), "rows": rows}
        size = int(np.prod(self.trained.shape))
        if self.view == "values" and size > MAX_VALUES:
            out["note"] = f"the first {MAX_VALUES} of {size} values"
        return out


def _png(image: torch.Tensor) -> str:
    """Base64 PNG of one ``[C, H, W]`` image in [0, 1] (clipped), enlarged to at least :data:`MIN_PIXELS` high."""
    from PIL import Image

    from ..evaluation.figures import image_grid

    arr = image_grid(image[None], ncol=1, pad=0, min_tile=MIN_PIXELS)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
