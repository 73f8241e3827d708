# The forecaster on the LiDAR-simulated synthetic scenes, over the tokenizer of
# configs/vae_lidar.py:  python tools/train.py configs/occ_lidar.py
_base_ = ['./occ.py']

data_root = 'data/synthetic_lidar/'
# The trust check (configs/occ.py) measured for this tokenizer: geometric IoU of its
# reconstruction 0.64-0.79 on the LiDAR-simulated training frames (median 0.71), PandaSet
# keyframes 0.68-0.70, real nuScenes seq11 0.36-0.38 (its vegetation).
model = dict(tokenizer_ckpt='work_dirs/vae_lidar', trust_min_iou=0.6)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
work_dir = './work_dirs/occ_lidar'
