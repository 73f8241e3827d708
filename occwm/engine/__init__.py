"""The runner side of occwm: mmengine hooks (registered in ``occwm.registry.HOOKS``) and
the one evaluation path (``evaluate``: ``Runner.test`` for checkpoints and for files)."""
from occwm.engine.render_hook import ForecastRenderHook
from occwm.engine.vis_hook import OccVisHook

__all__ = ['OccVisHook', 'ForecastRenderHook']
