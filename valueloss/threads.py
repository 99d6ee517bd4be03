"""The public threads the app cites: one :class:`Thread` type and one registry of them.

A finding, a tour step, a registry entry or a Scale note names a thread by its label
(``owner/repo#n``); :func:`thread` resolves the label here, so a thread's repository, number and
title are written once. :class:`Source` is the other kind of link: a pinned source file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Thread", "Source", "Link", "THREADS", "thread", "threads"]

_LABEL = re.compile(r"([\w.-]+/[\w.-]+)#(\d+)")


@dataclass(frozen=True)
class Thread:
    """A public GitHub issue or pull-request thread."""

    repo: str  # owner/name
    number: int
    title: str = ""  # the thread's own title, where we quote it
    pull: bool = False  # a pull request (its page lives under /pull/)

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/{'pull' if self.pull else 'issues'}/{self.number}"

    @property
    def label(self) -> str:
        return f"{self.repo}#{self.number}"


@dataclass(frozen=True)
class Source:
    """A pinned source file (or any page that is not a thread), with the words a link shows."""

    label: str
    url: str


Link = Thread | Source

THREADS: dict[str, Thread] = {
    t.label: t
    for t in (
        Thread("verl-project/verl", 498, "vf_loss nan in gsm8k ppo training"),
        Thread("verl-project/verl", 2642, "Understanding of vpred and values"),
        Thread("verl-project/verl", 5641),
        Thread("verl-project/verl", 5877),
        Thread("verl-project/verl", 7110),
        Thread(
            "verl-project/verl",
            6957,
            "[algo] fix: normalize critic value loss over the global mini-batch, not per micro-batch",
            pull=True,
        ),
        Thread("meta-pytorch/torchtune", 1875),
        Thread("hill-a/stable-baselines", 216, "PPO2 value function clipping seems to be flawed"),
        Thread("DLR-RM/stable-baselines3", 1426),
        Thread("RLinf/RLinf", 1529, "critic/value_clip_ratio is always 0"),
        Thread("openai/baselines", 91, "IN PPO, clipping the value loss with max is OK?"),
        Thread("openai/baselines", 765, "PPO2 clip value loss"),
        Thread("openai/baselines", 1134, "Clipped Loss in Critic of ppo2 unnecessarily long?"),
        Thread("huggingface/trl", 202),
        Thread("ray-project/ray", 19291, "[Bug] PPO value function loss is incorrect"),
        Thread("ray-project/ray", 8908, "[rllib] Should remove vf_clip param from PPO"),
        Thread("ray-project/ray", 22171, pull=True),  # the loss clamp, first released in ray 1.12.0
        Thread("vwxyzjn/cleanrl", 208, "Remove the value function clipping"),
        Thread("deepspeedai/DeepSpeedExamples", 556, "Critic Loss can not decrease"),
        Thread("deepspeedai/DeepSpeedExamples", 956),
        # Value losses that exploded or turned NaN/inf in real runs (the Your run page's detectors cite them)
        Thread("leggedrobotics/rsl_rl", 152, "[Question] about value function loss in PPO"),
        Thread("leggedrobotics/rsl_rl", 154, "Ways to sovle extremely LARGE value functions in Isaaclab"),
        Thread(
            "isaac-sim/IsaacLab",
            1999,
            "[Bug Report] Default Rough Policy for RSL-RL on Go2 Locomotion Fails as a Result of NaN Values",
        ),
        Thread("isaac-sim/IsaacLab", 2539, "Error executing job with overrides: []"),
        Thread("isaac-sim/IsaacLab", 4570, '[Question] PPO Training Crash: Value Loss Explosion & "std >= 0.0"'),
    )
}


def thread(label: str) -> Thread:
    """The registered thread with this label (``owner/repo#n``); a ValueError names the known labels."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ValueError(f"a thread label is owner/repo#number, got {label!r}")
    if label not in THREADS:
        raise ValueError(f"unknown thread {label!r}; known: {', '.join(sorted(THREADS))}")
    return THREADS[label]


def threads(*labels: str) -> tuple[Thread, ...]:
    """:func:`thread` of each label, in order."""
    return tuple(thread(label) for label in labels)
