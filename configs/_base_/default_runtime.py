# Runtime shared by every occwm config (mmengine Runner).
default_scope = 'occwm'
custom_imports = dict(imports=['occwm.compat', 'occwm.data', 'occwm.models', 'occwm.evaluation',
                               'occwm.engine'],
                      allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=False, window_size=20)
log_level = 'INFO'
randomness = dict(seed=0, deterministic=False)
load_from = None
resume = False
