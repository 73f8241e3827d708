# Sparse-convolution occupancy tokenizer (VAE): python tools/train.py configs/vae.py
_base_ = ['./_base_/default_runtime.py', './_base_/occ3d_data.py']

model = dict(type='OccVAE', grid={{_base_.grid}})  # defaults: see occwm/models/tokenizer.py

train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='occwm.occ_collate'),
    dataset=dict(type='OccForecastDataset', data_root={{_base_.data_root}}, ann_file={{_base_.train_ann_file}},
                 num_past=1, num_future=0, pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='occwm.occ_collate'),
    dataset=dict(type='OccForecastDataset', data_root={{_base_.data_root}}, ann_file={{_base_.val_ann_file}},
                 num_past=1, num_future=0, stride=4, pipeline={{_base_.pipeline}}, test_mode=True))
test_dataloader = val_dataloader
# Reconstruction IoU / mIoU of every frame; the protocol sets the absent-class rule and
# mask (tools/test.py configs/vae.py CKPT --protocol i2world --mask camera).
val_evaluator = dict(type='OccMetric', protocol='occworld', avg_frames=(1,), frame_names=('recon',), baselines=(),
                     present_frame=False)
test_evaluator = val_evaluator

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5),
]
work_dir = './work_dirs/vae'
