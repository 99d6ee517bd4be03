"""Names that vulture ([tool.vulture] in pyproject.toml, min confidence 60) reports unused but that are used.

Each line names one, with why. Fields of the library's result records that only the tests read are part of
what a caller gets back (and the tests check them), so they stay.
"""

from pages.registry import page_for_script
from valueloss.fused.cloop import Loop
from valueloss.teach.advice import Advice
from valueloss.teach.explain import TokenReadout
from valueloss.teach.tour import Feedback, MicroBatchSettings
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_reports import BatchStats
from valueloss.tools.clipfrac import EpsTarget
from valueloss.tools.runlogs.recognise import Recognition

Loop.descriptor  # holds the checked library file open while it is loaded (cloop.py: no swap after the check)
MicroBatchSettings.sequences  # a TypedDict key, read as MICRO_BATCHES["sequences"]
page_for_script  # the registry's lookup by script; tests/app/test_registry.py
Advice.suggested_eps  # the advice's eps for the target, in its result; tests/unit/test_advice.py
Advice.basis  # the evidence an eps number was read on, in words; tests/unit/test_advice.py
TokenReadout.region_label  # tests/unit/test_explain.py
TokenReadout.half_grad  # verl's d (0.5 * max) / dv; tests/unit/test_explain.py
Feedback.right_choice  # tests/unit/test_tour.py
Recognition.policy_only  # the policy's clip-fraction metrics, never read as the critic's; test_runlogs_analysis.py
EpsTarget.achieved  # tests/unit/test_clipfrac.py
BatchStats.median_abs_gap  # the batch's median |R - v_old|, in its statistics record; tests/unit/test_batch_reports.py
# synthetic_batch reads its parameters through locals(), each checked by its SYNTHETIC_PARAMS rule (tools/batch.py)
_ = synthetic_batch
_.max_len, _.reward_mean, _.reward_std, _.kl_coef, _.kl_mean, _.value_noise, _.value_scale, _.value_bias, _.pred_noise
