# The tokenizer trained on synthetic scenes seen through the simulated LiDAR
# (python tools/make_synthetic.py data/synthetic_lidar --lidar): occupancy built by the
# real-data builder from simulated sweeps (occwm/synthetic/lidar.py), so it meets scattered
# returns, porous vegetation and unobserved shadows as real LiDAR occupancy has them.
#   python tools/train.py configs/vae_lidar.py
_base_ = ['./vae.py']

data_root = 'data/synthetic_lidar/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
work_dir = './work_dirs/vae_lidar'
