# The tokenizer on LiDAR-simulated synthetic scenes PLUS real sequences the user points at,
# with one real sequence held out for testing (the quickstart keeps both real sequences
# out of training, so they stay honest tests; this config is for users who want the real
# frames in):
#   python tools/build_occupancy.py ../shared/data/nuscenes_seq11 data/nuscenes_seq11
#   python tools/convert_pandaset.py ../shared/data/pandaset_002 data/pandaset_002_frames
#   python tools/build_occupancy.py --format frames data/pandaset_002_frames data/pandaset_002
#   python tools/train.py configs/vae_lidar_real.py
# Trained on: synthetic_lidar train + nuScenes seq11 (every frame, 4x as often as a
# synthetic frame); tested on: PandaSet 002 (held out). Swap the two to hold seq11 out.
_base_ = ['./vae_lidar.py']

_pipeline = {{_base_.train_pipeline}}
_synthetic = dict(type='OccForecastDataset', data_root='data/synthetic_lidar/',
                  ann_file='synthetic_infos_train.pkl', num_past=1, num_future=0,
                  pipeline=_pipeline)
_seq11 = dict(type='OccForecastDataset', data_root='data/nuscenes_seq11/',
              ann_file='nuscenes_seq11_infos.pkl', num_past=1, num_future=0, pipeline=_pipeline)
train_dataloader = dict(dataset=dict(
    _delete_=True, type='ConcatDataset',
    datasets=[_synthetic, dict(type='RepeatDataset', times=4, dataset=_seq11)]))
test_dataloader = dict(dataset=dict(data_root='data/pandaset_002/', ann_file='pandaset_002_infos.pkl',
                                    stride=1))
work_dir = './work_dirs/vae_lidar_real'
