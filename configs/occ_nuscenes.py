# The forecaster on Occ3D-nuScenes with OccWorld's info pkls, in the layout
#   data/nuscenes/gts/<scene>/<token>/labels.npz
#   data/nuscenes/nuscenes_infos_{train,val}_temporal_v3_scene.pkl
# Train the tokenizer first with the same data:
#   python tools/train.py configs/vae.py --cfg-options <the same data_root/ann_file>
_base_ = ['./occ.py']

data_root = 'data/nuscenes/'
train_dataloader = dict(batch_size=4, dataset=dict(
    data_root=data_root, ann_file='nuscenes_infos_train_temporal_v3_scene.pkl'))
val_dataloader = dict(dataset=dict(
    data_root=data_root, ann_file='nuscenes_infos_val_temporal_v3_scene.pkl', stride=1))
test_dataloader = val_dataloader
model = dict(trust_min_iou=None)  # trained on the data it forecasts: no synthetic-only guard
max_iters = 100000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=1e-6),
]
work_dir = './work_dirs/occ_nuscenes'
