# The tokenizer on Occ3D-nuScenes, sized for one node of 8 GPUs (bf16):
#   torchrun --nproc_per_node 8 tools/train.py configs/vae_nuscenes.py --launcher pytorch
# (another number of GPUs: add --auto-scale-lr). Then configs/occ_nuscenes.py reads it
# from work_dirs/vae_nuscenes. Sizes and costs: python tools/model_stats.py
# configs/vae_nuscenes.py --input occ3d (README, "GPUs and clusters").
_base_ = ['./vae.py', './_base_/nuscenes.py']

model = {{_base_.nusc_tokenizer}}  # merged into vae.py's OccVAE on the Occ3D grid

train_dataloader = dict(
    batch_size={{_base_.nusc_batch_per_gpu}}, num_workers={{_base_.nusc_workers}},
    pin_memory=True,
    dataset=dict(data_root={{_base_.nusc_root}}, ann_file={{_base_.nusc_train_ann}}))
val_dataloader = dict(
    batch_size={{_base_.nusc_batch_per_gpu}}, num_workers={{_base_.nusc_workers}},
    dataset=dict(data_root={{_base_.nusc_root}}, ann_file={{_base_.nusc_val_ann}}, stride=8))
test_dataloader = dict(
    batch_size={{_base_.nusc_batch_per_gpu}}, num_workers={{_base_.nusc_workers}},
    dataset=dict(data_root={{_base_.nusc_root}}, ann_file={{_base_.nusc_val_ann}}, stride=1))

# 40,000 steps of 64 frames: about 90 epochs of the 28,130 training frames.
max_iters = 40000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
# bf16 autocast of the training forward, backward outside it (mmengine AmpOptimWrapper,
# CUDA only: on a CPU tools/train.py trains in float32 with a plain OptimWrapper).
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=1e-6),
]
auto_scale_lr = dict(enable=False, base_batch_size={{_base_.nusc_base_batch}})
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3))
# EMA of the weights (an average over about the last 5,000 steps) is what is evaluated
# and saved as the model (mmengine EMAHook swaps it in for validation and checkpoints).
custom_hooks = [dict(type='EMAHook', momentum=2e-4, update_buffers=True, priority=49)]
work_dir = './work_dirs/vae_nuscenes'
