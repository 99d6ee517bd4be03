"""A real PPO whose critic is trained with any registry dialect's value loss: the experiment behind
"does value clipping help?".

Read it top to bottom like CleanRL's ``ppo.py`` / ``ppo_continuous_action.py`` (whose settings it uses):
gymnasium vector environments, GAE, minibatches and epochs, advantage normalisation, separate actor and
critic networks. The one change is the value loss: ``valueloss.dialect_loss(dialect, ...)`` computes it,
so a run trains with exactly the number that library logs, with ``eps`` (the dialect's clip parameter,
``None`` = off) and, optionally, value normalisation (the critic predicts normalised returns and the clip
acts on them, as in Andrychowicz et al. 2021's code).

Deterministic per seed on CPU: every random draw (weights, actions, minibatch order, environments) comes
from generators seeded by ``config.seed``, and the run uses one torch thread, so the same config gives the
same curve bit for bit, in any process. Only ``RunResult.wall_s`` depends on the machine.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from ..dialects import DialectResult, check_clip_param, dialect_loss, get_dialect

__all__ = [
    "ENVS",
    "MAX_TOTAL_STEPS",
    "EnvSpec",
    "PPOConfig",
    "RunResult",
    "UPDATE_COLUMNS",
    "off_eps",
    "train",
]

MAX_TOTAL_STEPS = 10_000_000  # one run; a sweep multiplies it by its runs (the CLI caps those too)
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class EnvSpec:
    """What the trainer needs to know about an environment: its action kind and CleanRL's preset for it."""

    continuous: bool
    preset: str  # "classic" (CleanRL's ppo.py) or "mujoco" (ppo_continuous_action.py)
    extra: str = ""  # the pip extra that provides it, named in the error when it is missing


ENVS: dict[str, EnvSpec] = {
    "CartPole-v1": EnvSpec(continuous=False, preset="classic"),
    "Acrobot-v1": EnvSpec(continuous=False, preset="classic"),
    "Hopper-v5": EnvSpec(continuous=True, preset="mujoco", extra="mujoco"),
    "Walker2d-v5": EnvSpec(continuous=True, preset="mujoco", extra="mujoco"),
    "HalfCheetah-v5": EnvSpec(continuous=True, preset="mujoco", extra="mujoco"),
}

# CleanRL's defaults, per script (cleanrl/ppo.py and cleanrl/ppo_continuous_action.py). CleanRL turns its
# value clipping on by default (clip_vloss=True, eps = clip_coef = 0.2); here eps is the experiment's knob.
PRESETS: dict[str, dict] = {
    "classic": dict(
        total_steps=500_000,
        learning_rate=2.5e-4,
        num_envs=4,
        num_steps=128,
        num_minibatches=4,
        update_epochs=4,
        ent_coef=0.01,
        normalize_env=False,
    ),
    "mujoco": dict(
        total_steps=1_000_000,
        learning_rate=3e-4,
        num_envs=1,
        num_steps=2048,
        num_minibatches=32,
        update_epochs=10,
        ent_coef=0.0,
        normalize_env=True,  # observation and reward normalisation and clipping, as CleanRL's wrappers
    ),
}

# The columns of one row per update (the curves table of a sweep adds the run's settings in front).
UPDATE_COLUMNS = (
    "update",
    "global_step",
    "episodic_return",  # mean return of the episodes that ended during this update's rollout (NaN: none did)
    "episodes",  # how many ended
    "value_loss",  # the dialect's loss, averaged over this update's minibatches
    "vf_clipfrac",  # the dialect's clip fraction, averaged likewise (NaN where the dialect logs none)
    "explained_variance",  # 1 - Var(R - v_old) / Var(R) over the rollout, before the update
    "gap_over_eps",  # mean |R - v_old| / eps in the units the clip acts on (NaN when clipping is off)
    "return_std",  # std of R in the units the clip acts on (sigma_R: eps / return_std is eps in sigma_R)
    "policy_loss",
    "entropy",
    "approx_kl",
)


@dataclass(frozen=True)
class PPOConfig:
    """One training run. ``PPOConfig.for_env`` fills in CleanRL's settings for the environment."""

    env_id: str
    seed: int = 1
    total_steps: int = 500_000
    dialect: str = "verl"
    eps: float | None = None  # the dialect's clip parameter (its units: Dialect.eps_units); None: off
    value_norm: bool = False  # the critic predicts normalised returns; the clip acts on normalised values
    loss_agg_mode: str = "token-mean"
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    num_envs: int = 4
    num_steps: int = 128
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.2  # the policy's ratio clip (fixed: the experiment varies only the critic's eps)
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_env: bool = False

    @classmethod
    def for_env(cls, env_id: str, **overrides) -> PPOConfig:
        """CleanRL's settings for ``env_id`` (its script's defaults), with ``overrides`` on top."""
        spec = env_spec(env_id)
        return cls(env_id=env_id, **{**PRESETS[spec.preset], **overrides}).validated()

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    def validated(self) -> PPOConfig:
        """The config itself, after checking every field (a ValueError or TypeError names the bad one)."""
        env_spec(self.env_id)
        _integer("seed", self.seed, 0, MAX_SEED)
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs"):
            _integer(name, getattr(self, name), 1, 100_000)
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"num_minibatches ({self.num_minibatches}) must divide the batch of num_envs x num_steps = "
                f"{self.batch_size} transitions"
            )
        _integer("total_steps", self.total_steps, self.batch_size, MAX_TOTAL_STEPS)
        get_dialect(self.dialect)
        if self.eps is not None:
            check_clip_param("eps", self.dialect, self.eps)
        if self.loss_agg_mode not in get_dialect(self.dialect).modes:
            raise ValueError(
                f"loss_agg_mode {self.loss_agg_mode!r} is not available for {self.dialect}; choose one of: "
                f"{', '.join(get_dialect(self.dialect).modes)}"
            )
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_coef", "ent_coef", "vf_coef", "max_grad_norm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.gamma > 1 or self.gae_lambda > 1:
            raise ValueError(f"gamma and gae_lambda must be at most 1, got {self.gamma} and {self.gae_lambda}")
        for name in ("value_norm", "anneal_lr", "norm_adv", "normalize_env"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        return self


def env_spec(env_id) -> EnvSpec:
    if not isinstance(env_id, str) or env_id not in ENVS:
        raise ValueError(f"unknown environment {env_id!r}; this trainer runs: {', '.join(ENVS)}")
    return ENVS[env_id]


def _integer(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return int(value)


def off_eps(dialect: str) -> float | None:
    """The clip parameter that turns ``dialect``'s clipping off: ``None`` where the library has an off
    switch, else its own off value (RLlib's inf, TorchRL's 0). A library with neither (verl clips always)
    gets an eps so wide that the clip never binds: its loss and gradient are then the unclipped ones
    exactly (the clipped term equals the unclipped one, and max passes the whole gradient through)."""
    d = get_dialect(dialect)
    if d.supports_off:
        return None
    if d.off_values:
        return d.off_values[0]
    return 1e30


@dataclass
class RunResult:
    """One run: its config, one row per update (``UPDATE_COLUMNS``), and the wall time it took."""

    config: PPOConfig
    rows: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    finished: bool = True  # False: stopped early by ``should_stop``

    @property
    def steps_per_s(self) -> float:
        steps = self.rows[-1]["global_step"] if self.rows else 0
        return steps / self.wall_s if self.wall_s > 0 else float("nan")


# ---------------------------------------------------------------------------------------------------------
# Environments and networks


def make_envs(config: PPOConfig):
    """``num_envs`` copies in one process, each seeded from ``config.seed``. Episodes reset in the same
    step they end (gymnasium's SAME_STEP autoreset, CleanRL's behaviour), and their undiscounted return
    is recorded before any reward normalisation."""
    import gymnasium as gym

    spec = env_spec(config.env_id)

    def thunk():
        try:
            env = gym.make(config.env_id)
        except gym.error.DependencyNotInstalled as err:
            raise ValueError(
                f"{config.env_id} needs the '{spec.extra}' extra: pip install 'valueloss[{spec.extra}]' ({err})"
            ) from err
        env = gym.wrappers.RecordEpisodeStatistics(env)
        if config.normalize_env:
            env = gym.wrappers.ClipAction(env)
            env = gym.wrappers.NormalizeObservation(env)
            env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -10, 10), env.observation_space)
            env = gym.wrappers.NormalizeReward(env, gamma=config.gamma)
            env = gym.wrappers.TransformReward(env, lambda r: np.clip(r, -10, 10))
        return env

    return gym.vector.SyncVectorEnv([thunk] * config.num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def layer_init(layer: nn.Linear, generator: torch.Generator, std: float = math.sqrt(2)) -> nn.Linear:
    """Orthogonal weights, zero biases (CleanRL's initialisation), drawn from ``generator``."""
    torch.nn.init.orthogonal_(layer.weight, std, generator=generator)
    torch.nn.init.constant_(layer.bias, 0.0)
    return layer


def mlp(n_in: int, n_out: int, out_std: float, generator: torch.Generator) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(n_in, 64), generator),
        nn.Tanh(),
        layer_init(nn.Linear(64, 64), generator),
        nn.Tanh(),
        layer_init(nn.Linear(64, n_out), generator, std=out_std),
    )


class Agent(nn.Module):
    """Separate actor and critic MLPs (64-64 tanh). The critic's output is in the units the value loss
    sees: returns, or normalised returns when value normalisation is on."""

    def __init__(self, obs_dim: int, n_actions: int, continuous: bool, generator: torch.Generator):
        super().__init__()
        self.continuous = continuous
        self.critic = mlp(obs_dim, 1, 1.0, generator)
        self.actor = mlp(obs_dim, n_actions, 0.01, generator)
        if continuous:
            self.actor_logstd = nn.Parameter(torch.zeros(1, n_actions))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def distribution(self, x: torch.Tensor):
        out = self.actor(x)
        if self.continuous:
            return Normal(out, self.actor_logstd.expand_as(out).exp(), validate_args=False)
        return Categorical(logits=out, validate_args=False)

    def sample(self, dist, generator: torch.Generator) -> torch.Tensor:
        """An action drawn with ``generator`` (``dist.sample()`` would draw from torch's global RNG)."""
        if self.continuous:
            return dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=generator)
        return torch.multinomial(dist.probs, 1, generator=generator).squeeze(-1)

    def log_prob(self, dist, action: torch.Tensor) -> torch.Tensor:
        lp = dist.log_prob(action)
        return lp.sum(-1) if self.continuous else lp

    def entropy(self, dist) -> torch.Tensor:
        ent = dist.entropy()
        return ent.sum(-1) if self.continuous else ent


class ValueScale:
    """Value normalisation: running mean and variance of the returns (gymnasium's RunningMeanStd).

    The critic predicts ``(R - mean) / std``; a rollout stores its values in return units (for GAE), and
    before each update the stats take in the new returns and both ``R`` and ``v_old`` are normalised with
    them. Off: the identity, and the loss sees raw returns."""

    def __init__(self, enabled: bool):
        from gymnasium.wrappers.utils import RunningMeanStd

        self.enabled = enabled
        self.stats = RunningMeanStd(shape=())

    def _mean_std(self) -> tuple[float, float]:
        if not self.enabled:
            return 0.0, 1.0
        return float(self.stats.mean), float(np.sqrt(self.stats.var + 1e-8))

    def to_returns(self, v: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean_std()
        return v * std + mean

    def to_loss_units(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean_std()
        return (x - mean) / std

    def update(self, returns: torch.Tensor) -> None:
        if self.enabled:
            self.stats.update(returns.double().numpy().reshape(-1))


@contextlib.contextmanager
def _one_thread():
    """One torch thread for the run (bit-for-bit results do not depend on the machine's core count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _finished_episodes(infos: dict) -> list[float]:
    final = infos.get("final_info")
    if not final or "episode" not in final:
        return []
    mask = final["_episode"]
    return [float(r) for r in np.asarray(final["episode"]["r"])[mask]]


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - pred) / Var(target) (NaN when the target is constant), as CleanRL logs it."""
    var = float(target.var(unbiased=False))
    return float("nan") if var == 0 else 1.0 - float((target - pred).var(unbiased=False)) / var


# ---------------------------------------------------------------------------------------------------------
# Training


def train(
    config: PPOConfig,
    *,
    on_update: Callable[[dict], None] | None = None,
    on_minibatch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train one agent; one row per update (``UPDATE_COLUMNS``).

    ``on_update(row)`` is called after each update (progress), ``on_minibatch(batch)`` with each
    minibatch's critic inputs and the loss the step used (tests check it against the dialect), and
    ``should_stop()`` is asked before each update (a True stops the run; ``finished`` is then False).
    """
    config = config.validated()
    with _one_thread():
        return _train(config, on_update, on_minibatch, should_stop)


def _train(config, on_update, on_minibatch, should_stop) -> RunResult:
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    spec = env_spec(config.env_id)
    eps = off_eps(config.dialect) if config.eps is None else config.eps

    envs = make_envs(config)
    obs_shape = envs.single_observation_space.shape
    act_shape = envs.single_action_space.shape
    n_actions = int(np.prod(act_shape)) if spec.continuous else int(envs.single_action_space.n)
    agent = Agent(int(np.prod(obs_shape)), n_actions, spec.continuous, generator)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    scale = ValueScale(config.value_norm)

    # Rollout storage: num_steps x num_envs
    T, N = config.num_steps, config.num_envs
    obs = torch.zeros((T, N, *obs_shape))
    actions = torch.zeros((T, N, *act_shape))
    logprobs = torch.zeros((T, N))
    rewards = torch.zeros((T, N))
    dones = torch.zeros((T, N))
    values = torch.zeros((T, N))  # in return units

    global_step = 0
    next_obs, _ = envs.reset(seed=config.seed)
    next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
    next_done = torch.zeros(N)
    result = RunResult(config=config)

    for update in range(1, config.num_updates + 1):
        if should_stop is not None and should_stop():
            result.finished = False
            break
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (update - 1.0) / config.num_updates) * config.learning_rate

        # 1. Collect a rollout with the current policy.
        episode_returns: list[float] = []
        for step in range(T):
            global_step += N
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                dist = agent.distribution(next_obs)
                action = agent.sample(dist, generator)
                logprobs[step] = agent.log_prob(dist, action)
                values[step] = scale.to_returns(agent.value(next_obs))
            actions[step] = action
            next_obs_np, reward, terminated, truncated, infos = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32)
            next_done = torch.as_tensor(np.logical_or(terminated, truncated), dtype=torch.float32)
            episode_returns += _finished_episodes(infos)

        # 2. Generalised advantage estimation (GAE), bootstrapping from the value of the last observation.
        with torch.no_grad():
            next_value = scale.to_returns(agent.value(next_obs))
            advantages = torch.zeros_like(rewards)
            lastgaelam = torch.zeros(N)
            for t in reversed(range(T)):
                nextnonterminal = 1.0 - (next_done if t == T - 1 else dones[t + 1])
                nextvalues = next_value if t == T - 1 else values[t + 1]
                delta = rewards[t] + config.gamma * nextvalues * nextnonterminal - values[t]
                lastgaelam = delta + config.gamma * config.gae_lambda * nextnonterminal * lastgaelam
                advantages[t] = lastgaelam
            returns = advantages + values

        # 3. Flatten the rollout; the critic's targets and old values in the units the loss sees.
        b_obs = obs.reshape((-1, *obs_shape))
        b_actions = actions.reshape((-1, *act_shape)) if spec.continuous else actions.reshape(-1).long()
        b_logprobs = logprobs.reshape(-1)
        b_advantages = advantages.reshape(-1)
        scale.update(returns)
        b_returns = scale.to_loss_units(returns.reshape(-1))
        b_values = scale.to_loss_units(values.reshape(-1))

        # 4. Several epochs of minibatch updates: clipped policy loss, the dialect's value loss, entropy bonus.
        stats: dict[str, list[float]] = {"value_loss": [], "vf_clipfrac": [], "policy_loss": [], "entropy": []}
        stats["approx_kl"] = []
        for _epoch in range(config.update_epochs):
            order = torch.randperm(config.batch_size, generator=generator)
            for mb in order.split(config.minibatch_size):
                dist = agent.distribution(b_obs[mb])
                logratio = agent.log_prob(dist, b_actions[mb]) - b_logprobs[mb]
                ratio = logratio.exp()
                mb_adv = b_advantages[mb]
                if config.norm_adv:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)
                ).mean()

                newvalue = agent.value(b_obs[mb])
                critic = value_loss(config, eps, newvalue, b_returns[mb], b_values[mb])
                entropy = agent.entropy(dist).mean()
                loss = pg_loss - config.ent_coef * entropy + config.vf_coef * critic.loss

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
                optimizer.step()

                if on_minibatch is not None:
                    on_minibatch(
                        {
                            "vpreds": newvalue.detach().clone(),
                            "returns": b_returns[mb].clone(),
                            "values": b_values[mb].clone(),
                            "eps": eps,
                            "loss": critic.loss.detach().clone(),
                            "clipfrac": None if critic.clipfrac is None else critic.clipfrac.detach().clone(),
                        }
                    )
                with torch.no_grad():
                    stats["approx_kl"].append(float(((ratio - 1) - logratio).mean()))
                stats["value_loss"].append(float(critic.loss.detach()))
                stats["vf_clipfrac"].append(float("nan") if critic.clipfrac is None else float(critic.clipfrac))
                stats["policy_loss"].append(float(pg_loss.detach()))
                stats["entropy"].append(float(entropy.detach()))

        clipping = config.eps is not None and not get_dialect(config.dialect).off(config.eps)
        row = {
            "update": update,
            "global_step": global_step,
            "episodic_return": float(np.mean(episode_returns)) if episode_returns else float("nan"),
            "episodes": len(episode_returns),
            "explained_variance": explained_variance(b_values, b_returns),
            "gap_over_eps": float((b_returns - b_values).abs().mean() / eps)
            if clipping and eps is not None and eps > 0
            else float("nan"),
            "return_std": float(b_returns.std(unbiased=False)),
            **{name: float(np.mean(v)) for name, v in stats.items()},
        }
        result.rows.append({name: row[name] for name in UPDATE_COLUMNS})
        if on_update is not None:
            on_update(result.rows[-1])

    envs.close()
    result.wall_s = time.perf_counter() - start
    return result


def value_loss(config: PPOConfig, eps, vpreds, returns, values) -> DialectResult:
    """The critic's loss on one minibatch: the dialect's own number, on the minibatch as one sequence."""
    mask = torch.ones(1, vpreds.numel())
    return dialect_loss(
        config.dialect, vpreds[None], returns[None], values[None], mask, eps, loss_agg_mode=config.loss_agg_mode
    )
