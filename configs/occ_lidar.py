# The forecaster on the LiDAR-simulated synthetic scenes, over the tokenizer of
# configs/vae_lidar.py:  python tools/train.py configs/occ_lidar.py
_base_ = ['./occ.py']

data_root = 'data/synthetic_lidar/'
model = dict(tokenizer_ckpt='work_dirs/vae_lidar')
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
work_dir = './work_dirs/occ_lidar'
