"""The runner side of occwm: mmengine hooks (registered in ``occwm.registry.HOOKS``;
``checkpoint``: atomic, verified checkpoints, exact resume, the NaN guard),
the trust check's calibration (``trust_hook``), the runner of the tools (``runner``: quiet console, prompt progress lines), the checks
the tools run first (``checks``) and the one evaluation path (``evaluate``:
``Runner.test`` for checkpoints and for files)."""
from occwm.engine.checkpoint import NanGuardHook, OccCheckpointHook, TrainingDiverged
from occwm.engine.render_hook import ForecastRenderHook
from occwm.engine.runner import OccRunner, ProgressLoggerHook, build_runner
from occwm.engine.trust_hook import TrustCalibrationHook
from occwm.engine.vis_hook import OccVisHook

__all__ = ['OccVisHook', 'ForecastRenderHook', 'OccRunner', 'ProgressLoggerHook',
           'build_runner', 'OccCheckpointHook', 'NanGuardHook', 'TrainingDiverged',
           'TrustCalibrationHook']
