"""The ``Space`` interface: genes, validation, canonical forms, encoding, sampling, parts, cost."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from ofahw.errors import ConfigError, UserError
from ofahw.space._ofa import ofa_modules
from ofahw.space._parts import Part, part_cost

_SUPERNET_LOCK = threading.Lock()


@dataclass(frozen=True)
class Gene:
    """One decision of the space: ``config[key][index]`` (or ``config[key]`` when index is None)."""

    key: str
    index: int | None
    choices: tuple

    @property
    def name(self) -> str:
        return self.key if self.index is None else f"{self.key}[{self.index}]"


class Space(ABC):
    """A family of subnets of one OFA supernet, declared like a pymoo problem.

    A config is OFA's arch dict plus the input resolution, e.g. for MobileNetV3
    ``{"ks": [20 ints], "e": [20 ints], "d": [5 ints], "r": 224}``. The integer encoding is one
    choice index per gene (``n_var`` genes, bounds ``xl`` .. ``xu``), resolution last.
    """

    name: str
    description: str
    resolutions: tuple[int, ...]

    # -- declared by each space -------------------------------------------------------------
    @abstractmethod
    def _arch_genes(self) -> list[Gene]:
        """The genes of the arch dict (not the resolution)."""

    @abstractmethod
    def _inactive(self, config: dict) -> set[tuple[str, int]]:
        """(key, index) pairs that the depth of ``config`` leaves out."""

    @abstractmethod
    def _make_supernet(self):
        """A randomly initialised supernet of the ``ofa`` package."""

    @abstractmethod
    def _parts_of(self, net_config: dict, resolution: int) -> list[Part]:
        """The parts, in order, of an OFA static-net config at ``resolution``."""

    @abstractmethod
    def _covering_configs(self, resolution: int) -> list[dict]:
        """Configs whose parts together include every part the space has at ``resolution``."""

    def _normalise(self, config: dict) -> dict:
        """Map equivalent spellings to one (hook; most spaces have none)."""
        return config

    # -- shape ------------------------------------------------------------------------------
    @cached_property
    def genes(self) -> tuple[Gene, ...]:
        return tuple(self._arch_genes()) + (Gene("r", None, tuple(self.resolutions)),)

    @cached_property
    def list_lengths(self) -> dict[str, int]:
        lengths: dict[str, int] = {}
        for gene in self.genes:
            if gene.index is not None:
                lengths[gene.key] = max(lengths.get(gene.key, 0), gene.index + 1)
        return lengths

    @property
    def n_var(self) -> int:
        return len(self.genes)

    @property
    def xl(self) -> np.ndarray:
        return np.zeros(self.n_var, dtype=int)

    @property
    def xu(self) -> np.ndarray:
        return np.array([len(g.choices) - 1 for g in self.genes], dtype=int)

    # -- validation and canonical form -------------------------------------------------------
    def canonical(self, config: Mapping | str) -> dict:
        """Validate ``config`` and return its canonical form; raise ConfigError if it is invalid.

        Entries that depth leaves out are ignored and set to their gene's first choice, so two
        configs that differ only there have one canonical form and one hash.
        """
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"config is not valid JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(config, Mapping):
            raise ConfigError(f"config must be a JSON object, got {type(config).__name__}")
        expected = set(self.list_lengths) | {"r"}
        unknown = set(config) - expected
        if unknown:
            raise ConfigError(f"config has unknown keys {sorted(unknown)} for space {self.name} (expects {sorted(expected)})")
        missing = expected - set(config)
        if missing:
            raise ConfigError(f"config lacks keys {sorted(missing)} for space {self.name}")
        out: dict = {}
        for key, length in self.list_lengths.items():
            values = config[key]
            if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != length:
                raise ConfigError(f"config['{key}'] must be a list of {length} numbers for space {self.name}")
            for value in values:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"config['{key}'] holds {value!r}, which is not a number")
            out[key] = list(values)
        r = config["r"]
        if isinstance(r, Sequence) and not isinstance(r, str) and len(r) == 1:
            r = r[0]  # OFA writes the resolution as a one-element list
        out["r"] = r
        out = self._normalise(out)
        inactive = self._inactive_checked(out)
        for gene in self.genes:
            value = out[gene.key] if gene.index is None else out[gene.key][gene.index]
            if (gene.key, gene.index) in inactive:
                out[gene.key][gene.index] = gene.choices[0]
            elif value not in gene.choices:
                raise ConfigError(self._bad_value(gene, value))
        return out

    def _inactive_checked(self, config: dict) -> set[tuple[str, int]]:
        """Depth genes must be valid before they can say which other genes are inactive."""
        for gene in self.genes:
            if gene.key == "d" and config["d"][gene.index] not in gene.choices:
                raise ConfigError(self._bad_value(gene, config["d"][gene.index]))
        return self._inactive(config)

    def _bad_value(self, gene: Gene, value) -> str:
        return f"config {gene.name} = {value!r} is not one of {list(gene.choices)} in space {self.name}"

    def config_hash(self, config: Mapping) -> str:
        """A short stable hash of the canonical form (plus the space name)."""
        text = json.dumps({"space": self.name, **self.canonical(config)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- integer encoding --------------------------------------------------------------------
    def encode(self, config: Mapping) -> np.ndarray:
        config = self.canonical(config)
        return np.array(
            [g.choices.index(config[g.key] if g.index is None else config[g.key][g.index]) for g in self.genes],
            dtype=int,
        )

    def decode(self, x: Sequence[int]) -> dict:
        x = np.asarray(x)
        if x.shape != (self.n_var,) or np.any(x < self.xl) or np.any(x > self.xu):
            raise ConfigError(f"encoded config must be {self.n_var} integers within the space's bounds")
        return self.canonical(self._config_of(x))

    def _config_of(self, x: Sequence[int]) -> dict:
        """The config dict that choice indices ``x`` spell, not yet validated or canonical."""
        config: dict = {key: [None] * n for key, n in self.list_lengths.items()}
        for gene, i in zip(self.genes, x, strict=True):
            if gene.index is None:
                config[gene.key] = gene.choices[int(i)]
            else:
                config[gene.key][gene.index] = gene.choices[int(i)]
        return config

    # -- populations of encoded configs (vectorised, for the searches) ----------------------
    @cached_property
    def _depth_columns(self) -> np.ndarray:
        return np.array([i for i, g in enumerate(self.genes) if g.key == "d"], dtype=int)

    @cached_property
    def _mask_by_depths(self) -> np.ndarray:
        """Active-gene mask of every combination of depth choices, indexed in mixed radix."""
        cols = self._depth_columns
        radix = self.xu[cols] + 1
        masks = np.ones((int(np.prod(radix)), self.n_var), dtype=bool)
        index = {(g.key, g.index): i for i, g in enumerate(self.genes)}
        for combo in range(len(masks)):
            x = self.xl.copy()
            x[cols] = np.unravel_index(combo, radix)
            for pair in self._inactive(self._normalise(self._config_of(x))):
                masks[combo, index[pair]] = False
        return masks

    def with_resolutions(self, resolutions: Sequence[int]) -> Space:
        """The same space with fewer resolutions (a search over the resolutions a LUT profiled)."""
        clone = copy.copy(self)
        for name in ("genes", "list_lengths", "_depth_columns", "_mask_by_depths"):
            clone.__dict__.pop(name, None)
        clone.resolutions = tuple(sorted(self.validate_resolutions(resolutions)))
        return clone

    def active_mask(self, X: np.ndarray) -> np.ndarray:
        """Which genes count, for a population ``X`` of shape (n, n_var): bool, same shape."""
        X = np.asarray(X, dtype=int)
        cols = self._depth_columns
        return self._mask_by_depths[np.ravel_multi_index(X[:, cols].T, self.xu[cols] + 1)]

    def repair(self, X: np.ndarray) -> np.ndarray:
        """The canonical encoding of each row: genes that depth leaves out set to their first choice."""
        X = np.asarray(X, dtype=int)
        return np.where(self.active_mask(X), X, 0)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, resolutions: Sequence[int] | None = None) -> list[dict]:
        """``n`` subnets with every gene drawn uniformly (resolution from ``resolutions``)."""
        return [self._draw(rng, self.validate_resolutions(resolutions), tilt=0.0) for _ in range(n)]

    def sample_stratified(
        self, n: int, rng: np.random.Generator, resolutions: Sequence[int] | None = None
    ) -> list[dict]:
        """``n`` distinct subnets spread evenly over the FLOPs range, so profiling sees the whole
        latency range rather than the crowd of mid-sized subnets that uniform sampling gives.

        A pool is drawn with choice probabilities tilted towards small or large choices, then for
        ``n`` evenly spaced log-FLOPs targets the nearest unused pool member is taken.
        """
        resolutions = self.validate_resolutions(resolutions)
        pool_size = max(20 * n, 200)
        tilts = np.linspace(-3.0, 3.0, 13)
        pool, seen = [], set()
        for i in range(pool_size):
            config = self._draw(rng, resolutions, tilt=float(tilts[i % len(tilts)]))
            h = self.config_hash(config)
            if h not in seen:
                seen.add(h)
                pool.append(config)
        log_flops = np.log([self.flops(c) for c in pool])
        targets = np.linspace(log_flops.min(), log_flops.max(), n)
        chosen: list[int] = []
        free = np.ones(len(pool), dtype=bool)
        for t in rng.permutation(targets):
            distance = np.where(free, np.abs(log_flops - t), np.inf)
            best = int(np.argmin(distance))
            if not np.isfinite(distance[best]):
                break
            free[best] = False
            chosen.append(best)
        return [pool[i] for i in sorted(chosen, key=lambda i: log_flops[i])]

    def validate_resolutions(self, resolutions: Sequence[int] | None) -> tuple[int, ...]:
        resolutions = tuple(resolutions) if resolutions else self.resolutions
        bad = [r for r in resolutions if r not in self.resolutions]
        if bad:
            raise ConfigError(f"resolutions {bad} are not in space {self.name} (allowed {list(self.resolutions)})")
        return resolutions

    def _draw(self, rng: np.random.Generator, resolutions: tuple[int, ...], tilt: float) -> dict:
        config: dict = {key: [None] * n for key, n in self.list_lengths.items()}
        for gene in self.genes[:-1]:
            # as rng.choice(k, p=...) draws (one uniform against the cumulative p), without its checks per gene
            config[gene.key][gene.index] = gene.choices[int(_tilted_cdf(len(gene.choices), tilt).searchsorted(rng.random(), side="right"))]
        config["r"] = int(rng.choice(resolutions))
        return self.canonical(config)

    # -- structure and cost ------------------------------------------------------------------
    @cached_property
    def supernet(self):
        return self._make_supernet()

    def net_config(self, config: Mapping) -> dict:
        """OFA's static-net config of the subnet (as ``get_active_net_config`` gives it)."""
        config = self.canonical(config)
        # The supernet holds one active subnet: setting and reading it is one step, or two threads
        # (two targets profiled at once) read each other's subnets.
        with _SUPERNET_LOCK:
            self.supernet.set_active_subnet(**{k: v for k, v in config.items() if k != "r"})
            active = self.supernet.get_active_net_config()
            # A JSON round trip gives plain data: OFA's ResNet puts a layer object where a config belongs.
            return json.loads(json.dumps(active, default=lambda layer: layer.config))

    def parts(self, config: Mapping) -> list[Part]:
        """The subnet's blocks (stem and head pieces included), in order, at its resolution."""
        config = self.canonical(config)
        return self._parts_of(self.net_config(config), config["r"])

    def catalogue(self, resolutions: Sequence[int] | None = None) -> dict[str, Part]:
        """Every distinct part any subnet can have at the given resolutions, by key."""
        found: dict[str, Part] = {}
        for r in self.validate_resolutions(resolutions):
            for config in self._covering_configs(r):
                for part in self.parts(config):
                    found.setdefault(part.key, part)
        return found

    def block_parts(self, resolutions: Sequence[int]) -> dict[str, tuple[int, Part]]:
        """Every distinct part at ``resolutions``, by key, with the resolution it is measured at: a
        part shared by several resolutions is listed at the first."""
        parts: dict[str, tuple[int, Part]] = {}
        for r in resolutions:
            for key, part in self.catalogue([r]).items():
                parts.setdefault(key, (r, part))
        return parts

    def flops(self, config: Mapping) -> float:
        """Multiply-accumulates in millions (the 'MFLOPs' OFA reports)."""
        return sum(part_cost(p)[0] for p in self.parts(config)) / 1e6

    def params(self, config: Mapping) -> float:
        """Parameters in millions."""
        return sum(part_cost(p)[1] for p in self.parts(config)) / 1e6

    def build_network(self, config: Mapping, weights=None):
        """The subnet as a torch module in eval mode: random initialisation (latency does not
        depend on weight values) or, with ``weights`` (a checkpoint path), the supernet's weights."""
        config = self.canonical(config)
        if weights is None:
            net_config = self.net_config(config)
            return ofa_modules().static.get_net_by_name(net_config["name"]).build_from_config(net_config).eval()
        return self.cut_subnet(self.load_supernet(weights), config)

    def load_supernet(self, weights):
        """A supernet of this space with the checkpoint ``weights`` (a path) loaded; cut subnets from
        it with :meth:`cut_subnet` (several subnets, one load)."""
        from ofahw.space.weights import load_state_dict

        supernet = self._make_supernet()
        try:
            supernet.load_state_dict(load_state_dict(weights))
        except (RuntimeError, ValueError, AssertionError, KeyError) as exc:
            raise UserError(f"weights {weights} do not fit space {self.name}: {str(exc).splitlines()[0]}") from None
        return supernet

    def cut_subnet(self, supernet, config: Mapping):
        """The subnet ``config`` of a loaded supernet, with its own copy of the weights, in eval mode."""
        config = self.canonical(config)
        supernet.set_active_subnet(**{k: v for k, v in config.items() if k != "r"})
        return supernet.get_active_subnet(preserve_weight=True).eval()

    def __reduce__(self):
        """Pickled by name and resolutions (a Ray worker gets the space its process registers, not a
        copy of the supernet)."""
        from ofahw.space import get_space

        return get_space, (self.name, self.resolutions)

    def __copy__(self) -> Space:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone


@cache
def _tilted_cdf(k: int, tilt: float) -> np.ndarray:
    """Cumulative probabilities of choices 0..k-1 tilted towards the large (``tilt`` > 0) or small ones."""
    logits = tilt * (np.arange(k) / max(k - 1, 1) - 0.5)
    p = np.exp(logits - logits.max())
    cdf = (p / p.sum()).cumsum()  # as numpy's choice forms it, so the draws are the same
    return cdf / cdf[-1]
