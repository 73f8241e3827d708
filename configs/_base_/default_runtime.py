# Runtime shared by every occwm config (mmengine Runner).
default_scope = 'occwm'
custom_imports = dict(imports=['occwm.compat', 'occwm.data', 'occwm.models', 'occwm.evaluation',
                               'occwm.engine'],
                      allow_failed_imports=False)

# The terminal shows progress and results; the config dump and hook table go to the log
# file only (occwm/engine/runner.py; verbose = True or the tools' --verbose: also the
# terminal). The first progress line (with the ETA) comes after one iteration, then
# every 20 iterations and at least once a minute.
verbose = False
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='ProgressLoggerHook', interval=20, max_seconds=60),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # occwm/engine/checkpoint.py: written to a temporary name, fsynced, read back, then
    # renamed (last_checkpoint too); an old checkpoint is deleted only after that; never
    # non-finite weights; meta['occwm'] (model, grid, sizes) and the random states of an
    # exact --resume.
    checkpoint=dict(type='OccCheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # A non-finite loss or gradient norm stops training (nothing saved after it); with
    # max_skips=N up to N such optimizer steps are skipped instead.
    nan_guard=dict(type='NanGuardHook', max_skips=0),
)
# Threads and dataloader workers: the tools fit them to the CPUs this process may use
# (occwm/runtime.py: torch threads + workers <= CPUs, passive OpenMP waits), capping the
# num_workers of the dataloaders; override with the environment variable OCCWM_THREADS=N
# (plan for N CPUs) or OCCWM_THREADS=off (torch's defaults, the workers as configured).
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=False, window_size=20)
log_level = 'INFO'
randomness = dict(seed=0, deterministic=False)
load_from = None
resume = False
