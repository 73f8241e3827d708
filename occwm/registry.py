"""occwm's mmengine registries (scope ``occwm``), children of mmengine's root
registries so that ``Runner`` builds occwm classes from configs with
``default_scope = 'occwm'``. Modules register on import; ``locations`` lists them
for lazy import.

Every root registry the ``Runner`` builds from (loops, samplers, optimizers, schedulers,
visualizers, ...) has an ``occwm`` child too, empty where occwm adds nothing: without
it mmengine warns "Failed to search registry with scope "occwm" in the ... registry
tree" for each of them, and falls back to the root (which is what the empty child
does, silently: it searches its parent)."""
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

# Children of the other root registries the Runner builds from (see the docstring).
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS  # noqa: E402
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR  # noqa: E402
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS  # noqa: E402
from mmengine.registry import LOOPS as MMENGINE_LOOPS  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS  # noqa: E402
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS  # noqa: E402
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS  # noqa: E402
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS  # noqa: E402
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS  # noqa: E402
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS  # noqa: E402
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS  # noqa: E402
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS  # noqa: E402
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS  # noqa: E402

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope='occwm', locations=['occwm.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='occwm')
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='occwm')
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='occwm')
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               scope='occwm')
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope='occwm')
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='occwm')
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='occwm')
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            scope='occwm')
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope='occwm')
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope='occwm')
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='occwm')
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope='occwm')
