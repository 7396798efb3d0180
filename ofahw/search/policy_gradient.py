"""Policy-gradient search in the TND-NAS manner: a categorical distribution per gene, REINFORCE
with a moving-average baseline, rewards from non-differentiable objectives, and progressive
shrinking of choices whose probability falls away. Its output is its archive's front."""

from __future__ import annotations

import numpy as np

from ofahw.errors import ConfigError
from ofahw.search.archive import Archive, hypervolume
from ofahw.search.problem import SubnetProblem

REWARDS = ("mnas", "tunas", "hypervolume")


class PolicyGradientSearch:
    """``reward``:

    - ``mnas``: ``acc * (lat / target) ** w``, ``w = -0.07`` (MnasNet's soft constraint);
    - ``tunas``: ``acc + beta * |lat / target - 1|``, ``beta = -0.07`` (TuNAS's absolute reward);
    - ``hypervolume``: the sample's hypervolume contribution to the archive's front (objectives
      scaled by the reference point); a dominated sample gets minus its scaled distance to the front.

    The first two need one accuracy and one latency (or cost) objective and a ``target``.
    """

    def __init__(self, problem: SubnetProblem, archive: Archive, reference_point: np.ndarray, rng: np.random.Generator,
                 reward: str = "hypervolume", target: float | None = None, batch: int = 64, lr: float = 0.1,
                 baseline_decay: float = 0.9, shrink_below: float = 0.02, shrink_after: int = 20):
        if reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}")
        self.problem, self.archive, self.ref, self.rng = problem, archive, np.asarray(reference_point, float), rng
        self.reward_name, self.batch, self.lr, self.decay = reward, batch, lr, baseline_decay
        self.shrink_below, self.shrink_after = shrink_below, shrink_after
        space = problem.space
        self.n_choices = space.xu + 1
        width = int(self.n_choices.max())
        self.allowed = np.arange(width)[None, :] < self.n_choices[:, None]  # (n_var, width)
        self.logits = np.zeros((space.n_var, width))
        self.baseline: float | None = None
        self.iteration = 0
        if reward != "hypervolume":
            acc = [i for i, o in enumerate(problem.objectives) if o.maximise]
            eff = [i for i, o in enumerate(problem.objectives) if not o.maximise]
            if len(acc) != 1 or not eff or target is None:
                raise ConfigError(f"the {reward} reward needs one accuracy objective, a latency or cost objective and "
                                  "--latency-target")
            self.acc, self.eff = acc[0], eff[0]
        self.target = target

    def probabilities(self) -> np.ndarray:
        z = np.where(self.allowed, self.logits, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def step(self) -> None:
        p = self.probabilities()
        cdf = np.cumsum(p, axis=1)
        u = self.rng.random((self.batch, len(p), 1))
        X = np.minimum((u > cdf[None]).sum(axis=2), self.n_choices - 1)
        X = self.problem.space.repair(X)
        prior = self.archive.front()[1] if self.reward_name == "hypervolume" else None  # what samples are judged against
        F, G = self.archive.evaluate_into(self.problem, X)
        reward = self._reward(F, G, prior)
        mean = float(reward.mean())
        self.baseline = mean if self.baseline is None else self.decay * self.baseline + (1 - self.decay) * mean
        advantage = reward - self.baseline
        advantage = advantage / (advantage.std() + 1e-12)
        active = self.problem.space.active_mask(X)  # genes depth leaves out get no credit
        onehot = np.zeros((self.batch,) + p.shape)
        np.put_along_axis(onehot, X[:, :, None], 1.0, axis=2)
        grad = ((onehot - p[None]) * (advantage[:, None, None] * active[:, :, None])).mean(axis=0)
        self.logits += self.lr * np.where(self.allowed, grad, 0.0)
        self.iteration += 1
        if self.iteration >= self.shrink_after:
            self._shrink()

    def _shrink(self) -> None:
        """Drop choices whose probability fell below ``shrink_below`` (never a gene's last one)."""
        p = self.probabilities()
        weak = self.allowed & (p < self.shrink_below)
        keep_one = weak.sum(axis=1) >= self.allowed.sum(axis=1)
        weak[keep_one] = False
        self.allowed &= ~weak

    def _reward(self, F: np.ndarray, G: np.ndarray | None, prior: np.ndarray) -> np.ndarray:
        penalty = 0.0 if G is None else np.maximum(G, 0).sum(axis=1)
        if self.reward_name == "hypervolume":
            return self._hv_reward(F, prior) - penalty
        acc = -F[:, self.acc] if self.problem.objectives[self.acc].maximise else F[:, self.acc]
        ratio = F[:, self.eff] / self.target
        if self.reward_name == "mnas":
            return acc * ratio ** -0.07 - penalty
        return acc - 0.07 * np.abs(ratio - 1.0) - penalty

    def _hv_reward(self, F: np.ndarray, front: np.ndarray) -> np.ndarray:
        if len(front) == 0:
            return np.zeros(len(F))
        lo = np.minimum(front.min(axis=0), F.min(axis=0))
        scale = np.maximum(self.ref - lo, 1e-12)
        front, F, ref = (front - lo) / scale, (F - lo) / scale, np.ones(len(scale))
        base = hypervolume(front, ref)
        out = np.empty(len(F))
        for i, f in enumerate(F):
            dominated = np.all(front <= f, axis=1) & np.any(front < f, axis=1)
            if dominated.any():
                out[i] = -np.min(np.linalg.norm(np.maximum(f - front, 0), axis=1))
            else:
                out[i] = hypervolume(np.vstack([front, f]), ref) - base
        return out


class MultiTargetPolicyGradient:
    """Several policies, each rewarded (mnas / tunas) for accuracy at its own latency target, the
    targets spread over the range of a random sample: together they cover the front, where one
    distribution settles on one region of it. They share the archive and the evaluation budget."""

    def __init__(self, problem: SubnetProblem, archive: Archive, reference_point: np.ndarray, rng: np.random.Generator,
                 reward: str = "tunas", n_policies: int = 8, batch: int = 100, **kwargs):
        space = problem.space
        eff = [i for i, o in enumerate(problem.objectives) if not o.maximise]
        if not eff:
            raise ConfigError("the policy-gradient search needs a latency or cost objective")
        sample = space.repair(rng.integers(space.xl, space.xu + 1, size=(2000, space.n_var)))
        latency = problem.objectives[eff[0]].evaluate(sample)
        targets = np.quantile(latency, np.linspace(0.02, 0.98, n_policies))
        sizes = [max(batch // n_policies + (k < batch % n_policies), 2) for k in range(n_policies)]  # the whole batch
        self.policies = [PolicyGradientSearch(problem, archive, reference_point, np.random.default_rng(rng.integers(2**63)),
                                              reward=reward, target=float(t), batch=b, **kwargs)
                         for t, b in zip(targets, sizes, strict=True)]
        self.targets = targets

    @property
    def problem(self):
        return self.policies[0].problem

    @problem.setter
    def problem(self, value):
        for p in self.policies:
            p.problem = value

    def step(self) -> None:
        for p in self.policies:
            p.step()
