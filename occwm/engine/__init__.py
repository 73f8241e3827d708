"""mmengine hooks of occwm (registered in ``occwm.registry.HOOKS``)."""
from occwm.engine.vis_hook import OccVisHook

__all__ = ['OccVisHook']
