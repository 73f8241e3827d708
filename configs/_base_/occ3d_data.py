# Data shared by the tokenizer and forecaster configs: the grid, the horizons and the
# dataset. Default: the synthetic quickstart set written by tools/make_synthetic.py.
# Occ3D-nuScenes with OccWorld's pkls: data_root = 'data/nuscenes/',
# ann_file 'nuscenes_infos_{train,val}_temporal_v3_scene.pkl' (see configs/occ_nuscenes.py).
grid = dict(point_cloud_range=(-40.0, -40.0, -1.0, 40.0, 40.0, 5.4), voxel_size=0.4)
num_past = 5    # frames, 2 Hz; the last one is the present
num_future = 6  # 0.5 s ... 3 s

data_root = 'data/synthetic/'
train_ann_file = 'synthetic_infos_train.pkl'
val_ann_file = 'synthetic_infos_val.pkl'

# Evaluation pipeline (no augmentation).
pipeline = [dict(type='LoadOccWindow', grid=grid), dict(type='PackOccInputs')]
# Training: one left-right mirror (y -> -y) per window with probability 0.5, applied to the
# occupancy, the trajectory and ego2global alike. Other options of RandomFlipRotateOcc:
# flip_x_prob, rot90_prob (+ rot90_k), yaw_prob (+ max_yaw); off by default: they make the
# ego drive backwards or sideways. Faster loading: LoadOccWindow(cache_dir='data/cache/...').
train_pipeline = [dict(type='LoadOccWindow', grid=grid),
                  dict(type='RandomFlipRotateOcc', grid=grid, flip_y_prob=0.5),
                  dict(type='PackOccInputs')]
dataset = dict(type='OccForecastDataset', data_root=data_root, num_past=num_past,
               num_future=num_future, pipeline=pipeline)
