# Occ3D-nuScenes with OccWorld's info pkls, shared by configs/vae_nuscenes.py and
# configs/occ_nuscenes.py (both must build the same tokenizer), in the layout
#   data/nuscenes/gts/<scene>/<token>/labels.npz
#   data/nuscenes/nuscenes_infos_{train,val}_temporal_v3_scene.pkl
# (700 training scenes, 28,130 frames, about 21,000 11-frame windows).
nusc_root = 'data/nuscenes/'
nusc_train_ann = 'nuscenes_infos_train_temporal_v3_scene.pkl'
nusc_val_ann = 'nuscenes_infos_val_temporal_v3_scene.pkl'

# The tokenizer for real LiDAR occupancy, 4x the widths of the quickstart's (OccVAE
# defaults) plus a submanifold convolution at full resolution in the decoder:
# 4.6 M parameters, 26 GFLOP per frame reconstructed, about 0.85 TFLOP per training step
# of 8 frames (python tools/model_stats.py configs/vae_nuscenes.py --input occ3d). Its
# 2D parts run under bfloat16 autocast (the sparse convolutions in float16 on CUDA).
nusc_tokenizer = dict(embed_dim=32, channels=(32, 64, 128), hidden_channels=256,
                      latent_channels=16, full_res_subm=True, autocast_dtype='bfloat16')

# One node of 8 GPUs, 8 samples per GPU (global batch 64). Other GPU counts: add
# --auto-scale-lr to tools/train.py and the learning rate follows the global batch
# linearly (mmengine's auto_scale_lr: lr * N * batch / base_batch_size).
nusc_batch_per_gpu = 8
nusc_base_batch = 64
nusc_workers = 6  # per GPU; capped to the CPUs by occwm/runtime.py
