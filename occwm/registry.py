"""occwm's mmengine registries (scope ``occwm``), children of mmengine's root
registries so that ``Runner`` builds occwm classes from configs with
``default_scope = 'occwm'``. Modules register on import; ``locations`` lists them
for lazy import."""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='occwm', locations=['occwm.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='occwm', locations=['occwm.data'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='occwm',
                   locations=['occwm.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='occwm', locations=['occwm.engine'])

from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS  # noqa: E402
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS  # noqa: E402

TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='occwm',
                      locations=['occwm.data'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope='occwm', locations=['occwm.data'])
