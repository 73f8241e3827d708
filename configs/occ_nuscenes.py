# The forecaster on Occ3D-nuScenes, sized for one node of 8 GPUs (bf16), on the
# tokenizer of configs/vae_nuscenes.py (train that first):
#   torchrun --nproc_per_node 8 tools/train.py configs/occ_nuscenes.py --launcher pytorch
# (another number of GPUs: add --auto-scale-lr). Sizes and costs: python
# tools/model_stats.py configs/occ_nuscenes.py (README, "GPUs and clusters").
_base_ = ['./occ.py', './_base_/nuscenes.py']

model = dict(
    tokenizer={{_base_.nusc_tokenizer}},  # the same tokenizer as configs/vae_nuscenes.py
    tokenizer_ckpt='work_dirs/vae_nuscenes',
    # DIT_PRESETS['L']: 12 blocks of width 384, 6 heads of 64 (flash attention on GPU),
    # 33 M parameters; bf16 autocast also in evaluation; compile=True compiles the blocks.
    dit=dict(preset='L', autocast_dtype='bfloat16', compile=False),
    trust_min_iou=None,  # trained on the data it forecasts: no synthetic-only guard
    motion=dict(classes=(2, 3, 4, 5, 6, 7, 9, 10)),  # every movable class of Occ3D
    # the model's default 4 Heun steps: configs/occ.py's 2 were chosen on the quick
    # synthetic model, where the steps change about 1e-5 of the forecast voxels; a
    # model trained at scale leans on its latent more (measure before lowering it)
    sampler=dict(steps=4),
)

# The latent cache (cache_latents) keeps 2 latents (flip) of every training frame per
# rank: 28,130 x 2 x 160 KB = 9 GB of host memory per GPU process; with less host memory
# set model.cache_latents=False (the frozen tokenizer then encodes every step).
train_dataloader = dict(
    batch_size={{_base_.nusc_batch_per_gpu}}, num_workers={{_base_.nusc_workers}},
    pin_memory=True,
    dataset=dict(data_root={{_base_.nusc_root}}, ann_file={{_base_.nusc_train_ann}}))
val_dataloader = dict(
    num_workers={{_base_.nusc_workers}},
    dataset=dict(data_root={{_base_.nusc_root}}, ann_file={{_base_.nusc_val_ann}}, stride=4))
test_dataloader = dict(
    num_workers={{_base_.nusc_workers}},
    dataset=dict(data_root={{_base_.nusc_root}}, ann_file={{_base_.nusc_val_ann}}, stride=1))

# 60,000 steps of 64 windows: about 180 epochs of the ~21,000 training windows.
max_iters = 60000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
# bf16 autocast of the training forward, backward outside it (mmengine AmpOptimWrapper,
# CUDA only: on a CPU tools/train.py trains in float32 with a plain OptimWrapper).
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                     optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=2000, end=max_iters, eta_min=1e-6),
]
auto_scale_lr = dict(enable=False, base_batch_size={{_base_.nusc_base_batch}})
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3))
# EMA of the DiT's weights over about the last 10,000 steps (DiT's 0.9999), evaluated
# and saved as the model; OccVisHook draws validation window 0 after each validation.
custom_hooks = [dict(type='EMAHook', momentum=1e-4, update_buffers=True, priority=49),
                dict(type='OccVisHook', interval=1, window_index=0)]
work_dir = './work_dirs/occ_nuscenes'
